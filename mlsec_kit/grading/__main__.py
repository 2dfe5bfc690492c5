"""Command line of the grader::

    python -m mlsec_kit.grading grade 02_ml_basics submissions/ --out grades/grades.csv
    python -m mlsec_kit.grading generate            # rewrite exercises/*.ipynb from exercises/source/
    python -m mlsec_kit.grading generate --check    # exit 1 if a student notebook is out of date
    python -m mlsec_kit.grading list                # the exercise sets and their questions
    python -m mlsec_kit.grading grade my_variant submissions/ --sets private_sets/   # an instructor's own set
    python -m mlsec_kit.grading gradescope 10_differential_privacy --out autograder.zip
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from .core import DEFAULT_TIMEOUT, exercise_ids, get_exercise


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0 seconds, got {text}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mlsec_kit.grading",
                                     description="Grade exercise notebooks and generate student versions.")
    sub = parser.add_subparsers(dest="command", required=True)
    grade = sub.add_parser("grade", help="grade a folder of submitted notebooks into a CSV",
                           description="Grade every .ipynb in FOLDER, each in its own process. Writes the CSV, "
                                       "feedback/<student>.txt and results/<student>/results.json (Gradescope) "
                                       "next to it.")
    grade.add_argument("exercise", help=f"exercise id, one of: {', '.join(exercise_ids())} (or one in --sets)")
    grade.add_argument("folder", type=Path, help="folder holding the submitted .ipynb files")
    grade.add_argument("--out", type=Path, default=Path("grades.csv"), help="CSV to write (default grades.csv)")
    grade.add_argument("--timeout", type=_positive, default=300.0, help="seconds per notebook (default 300)")
    grade.add_argument("--cell-timeout", type=_positive, default=60.0, help="seconds per cell (default 60)")
    grade.add_argument("--check-timeout", type=_positive, default=DEFAULT_TIMEOUT,
                       help=f"seconds per property check (default {DEFAULT_TIMEOUT:g})")
    grade.add_argument("--seed", type=int, default=None, help="grader seed (default: a fresh random one)")
    grade.add_argument("--jobs", "-j", type=int, default=1, help="notebooks graded in parallel (default 1)")
    grade.add_argument("--sets", type=Path, default=None,
                       help="folder of instructor-private exercise sets (*.py) to load before grading")
    grade.add_argument("--memory-mb", type=int, default=4096, help="memory per submission, MB (default 4096)")
    grade.add_argument("--visibility", action="append", default=[], metavar="QUESTION=WHEN",
                       help="Gradescope visibility of a question's test (visible, after_due_date, hidden); "
                            "'*=hidden' sets all")
    gs = sub.add_parser("gradescope", help="write a Gradescope autograder zip for an exercise set")
    gs.add_argument("exercise", help="exercise id")
    gs.add_argument("--out", type=Path, default=Path("autograder.zip"), help="zip to write")
    gs.add_argument("--sets", type=Path, default=None, help="folder of instructor-private sets to ship")
    gs.add_argument("--visibility", action="append", default=[], metavar="QUESTION=WHEN",
                    help="visibility of a question's test (visible, after_due_date, after_published, hidden)")
    gs.add_argument("--timeout", type=_positive, default=300.0, help="seconds per notebook (default 300)")
    auto = sub.add_parser("autograde", help="(inside Gradescope) grade /autograder/submission")
    auto.add_argument("--root", type=Path, default=Path("/autograder"))
    auto.add_argument("--config", type=Path, required=True)
    gen = sub.add_parser("generate", help="write exercises/<id>.ipynb from exercises/source/<id>.ipynb")
    gen.add_argument("ids", nargs="*", help="exercise ids (default: all)")
    gen.add_argument("--root", type=Path, default=Path("."), help="repository root (default: here)")
    gen.add_argument("--check", action="store_true", help="write nothing; exit 1 if a notebook is out of date")
    sub.add_parser("list", help="list the exercise sets and their questions")
    return parser


def _grade(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from .core import load_sets
    from .report import grade_folder, submissions_in
    from .sandbox import Limits

    private: list[str] = []
    if args.sets is not None:
        try:
            private = load_sets(args.sets)
        except Exception as err:
            parser.error(f"could not load the sets in {str(args.sets)!r}: {type(err).__name__}: {err}")
    if args.exercise not in exercise_ids() and args.exercise not in private:
        parser.error(f"unknown exercise {args.exercise!r}; choose one of: {', '.join([*exercise_ids(), *private])}")
    if not args.folder.is_dir():
        parser.error(f"folder {str(args.folder)!r} does not exist")
    if not submissions_in(args.folder):
        parser.error(f"folder {str(args.folder)!r} holds no .ipynb files")
    if args.memory_mb < 256:
        parser.error(f"--memory-mb must be at least 256, got {args.memory_mb}")
    visibility = _visibility(args, parser)
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    subs = grade_folder(args.exercise, args.folder, args.out, seed=args.seed, timeout=args.timeout,
                        cell_timeout=args.cell_timeout, check_timeout=args.check_timeout, jobs=args.jobs,
                        sets_dir=args.sets, limits=Limits(memory_mb=args.memory_mb), visibility=visibility)
    here = args.out.parent
    print(f"graded {len(subs)} notebooks (seed {subs[0].seed}): {args.out}, "
          f"{here / 'feedback'}/<student>.txt, {here / 'results'}/<student>/results.json")
    for s in subs:
        print(f"  {s.student}: {s.total}/{s.max_score} {s.status}")
    return 0


def _visibility(args: argparse.Namespace, parser: argparse.ArgumentParser) -> dict[str, str]:
    from .report import VISIBILITIES

    out = {}
    for item in args.visibility:
        name, _, when = item.partition("=")
        if when not in VISIBILITIES:
            parser.error(f"--visibility {item!r}: write QUESTION=WHEN with WHEN one of {', '.join(VISIBILITIES)}")
        out[name] = when
    return out


def _gradescope(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from .gradescope import build_autograder

    try:
        path = build_autograder(args.exercise, args.out, sets_dir=args.sets,
                                visibility=_visibility(args, parser), timeout=args.timeout)
    except ValueError as err:
        parser.error(str(err))
    print(f"wrote {path}: upload it as the autograder of a Gradescope programming assignment")
    return 0


def _generate(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from .source import generate

    unknown = [i for i in args.ids if i not in exercise_ids()]
    if unknown:
        parser.error(f"unknown exercise {unknown[0]!r}; choose one of: {', '.join(exercise_ids())}")
    try:
        changed = generate(args.root, args.ids or None, check_only=args.check)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for path in changed:
        print(f"{'out of date' if args.check else 'wrote'}: {path}")
    if not changed:
        print("student notebooks are up to date")
    return 1 if args.check and changed else 0


def _list() -> int:
    for exercise_id in exercise_ids():
        exercise = get_exercise(exercise_id)
        print(f"{exercise_id}: {exercise.title} ({exercise.max_score} points)")
        for q in exercise.questions.values():
            print(f"  {q.signature}  [{q.max_score}]")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "grade":
        return _grade(args, parser)
    if args.command == "generate":
        return _generate(args, parser)
    if args.command == "gradescope":
        return _gradescope(args, parser)
    if args.command == "autograde":
        from .gradescope import autograde
        autograde(args.root, args.config)
        return 0
    return _list()


if __name__ == "__main__":
    sys.exit(main())
