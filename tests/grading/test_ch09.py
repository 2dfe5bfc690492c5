"""The chapter-9 checks (equation-solving extraction of a softmax regression through a counting API, the label
read off one example's gradient, which statements about these attacks are true): every reference solution passes
on any seed, and each plausible wrong implementation fails the property written for it, on every one of many
seeds. Among the "wrong" ones NOT listed: regressing log p_k on the queries directly, which is correct (the
softmax's normaliser is common to all classes, so its fit shifts every row alike); it is a correct answer below."""

import textwrap

import pytest
import torch

from grading_helpers import (ROOT, assert_fails_on_every_seed, assert_forbidden_names_resolve, assert_mistake_fails,
                             assert_passes_on_seeds, assert_set_runs_quickly, property_fails, run_blocked,
                             solution_functions)
from mlsec_kit.grading import get_exercise, run_question
from mlsec_kit.grading.sets import ch09

EXERCISE = get_exercise("09_model_attacks")
SOURCE = ROOT / "exercises" / "source" / "09_model_attacks.ipynb"
QUESTIONS = ("extract_softmax", "label_from_gradient", "attack_statements")
SEEDS = range(900, 925)  # the grader draws seeds of its own: a mistake must fail on every one


@pytest.fixture(scope="module")
def solutions() -> dict:
    """The setup cell and the cells defining the three functions (not the real-data cell, which trains)."""
    return solution_functions(SOURCE, QUESTIONS)


def test_the_set_declares_the_chapter_questions():
    assert tuple(EXERCISE.questions) == QUESTIONS
    assert EXERCISE.chapter == 9 and EXERCISE.title == "Exercises: model inversion, extraction and gradient leakage"
    assert all(3 <= q.max_score <= 6 for q in EXERCISE.questions.values())
    forbid = {name: set(q.forbid) for name, q in EXERCISE.questions.items()}
    assert {"mlsec_kit.attacks.inference.extract_softmax_regression",
            "mlsec_kit.attacks.inference.extraction.extract_softmax_regression",
            "mlsec_kit.grading.sets.ch09._reference_extract"} <= forbid["extract_softmax"]
    assert {"mlsec_kit.attacks.inference.idlg_label", "mlsec_kit.attacks.inference.gradient_leakage.idlg_label",
            "mlsec_kit.grading.sets.ch09._reference_label"} <= forbid["label_from_gradient"]


def _kit_extract(query, num_features, num_classes, budget, generator):
    if budget < num_features + 1:
        raise ValueError("budget")
    from mlsec_kit.attacks.inference import extract_softmax_regression
    return extract_softmax_regression(query, num_features=num_features, num_classes=num_classes,
                                      num_queries=budget, generator=generator)


def _kit_label(weight_grad):
    if weight_grad.dim() != 2:
        raise ValueError("weight_grad")
    from mlsec_kit.attacks.inference import idlg_label
    return idlg_label(weight_grad)


def test_every_forbidden_name_is_a_kit_function_and_is_blocked_while_grading():
    """The names resolve (a typo would block nothing), and the kit's own answers score nothing but the
    validation written around them."""

    assert_forbidden_names_resolve(EXERCISE)
    cases = [("extract_softmax", _kit_extract, 1), ("label_from_gradient", _kit_label, 1),
             ("extract_softmax", ch09._reference_extract, 0),
             ("label_from_gradient", lambda g: ch09._reference_label(g), 0)]
    for name, fn, left in cases:
        question = EXERCISE.questions[name]
        if left:  # the kit itself is a correct answer (idlg_label from the weight alone assumes non-negative
            # features, as its docstring says: it misses the tanh property only) ...
            failed = [p.description for p in run_question(question, fn, seed=1).properties if not p.passed]
            assert failed == ([] if name == "extract_softmax" else
                              ["finds the label behind tanh features (which can be negative)"])
        result = run_blocked(question, fn)  # ... that earns nothing (but its validation)
        assert result.score == left


@pytest.mark.parametrize("name", QUESTIONS)
def test_every_solution_passes_every_check_on_many_seeds(solutions, name):
    assert_passes_on_seeds(EXERCISE.questions[name], solutions[name], range(90_000, 90_000 + 40))


def test_differently_built_correct_answers_pass():
    """Correct answers built another way earn full marks: regressing log p_k directly (the common normaliser
    shifts every row alike), Tramer et al.'s basis queries 0, e_1, ..., e_d, the whole budget in one-row calls with
    the zero-sum representative, float32 inputs solved in float64; and other rules for the label."""
    code = """
    def regress_log_p(query, num_features, num_classes, budget, generator):
        if budget < num_features + 1:
            raise ValueError(f"budget must be >= {num_features + 1}")
        x = torch.rand(budget, num_features, generator=generator, dtype=torch.float64)
        A = torch.cat([x, torch.ones(budget, 1, dtype=torch.float64)], 1)
        theta = torch.linalg.lstsq(A, query(x).log()).solution
        return theta[:-1].T, theta[-1]

    def basis_queries(query, num_features, num_classes, budget, generator):
        if budget < num_features + 1:
            raise ValueError("budget is too small")
        x = torch.cat([torch.zeros(1, num_features), torch.eye(num_features)]).double()
        log_p = query(x).log()
        b = log_p[0]
        W = (log_p[1:] - b).T
        return W, b

    def one_row_calls(query, num_features, num_classes, budget, generator):
        if budget < num_features + 1:
            raise ValueError("budget")
        x = torch.rand(budget, num_features, generator=generator)          # float32 inputs ...
        log_p = torch.cat([query(row[None]) for row in x]).log()
        A = torch.cat([x.double(), torch.ones(budget, 1, dtype=torch.float64)], 1)   # ... solved in float64
        theta = torch.linalg.lstsq(A, log_p - log_p[:, -1:], driver="gelsd").solution.T
        theta = theta - theta.mean(0)
        return theta[:, :-1].contiguous(), theta[:, -1].contiguous()

    def largest_row(weight_grad):
        if not isinstance(weight_grad, torch.Tensor) or weight_grad.ndim != 2:
            raise ValueError("weight_grad must be (K, H)")
        return int(weight_grad.norm(dim=1).argmax())   # |p_c - 1| = sum of the other p_k > each of them

    def largest_abs_sum(weight_grad):
        if weight_grad.ndim != 2:
            raise ValueError(f"weight_grad has {weight_grad.ndim} dimensions, expected 2")
        return weight_grad.abs().sum(1).argmax().item()
    """
    namespace = {"torch": torch}
    exec(textwrap.dedent(code), namespace)
    for name, fn in [("extract_softmax", "regress_log_p"), ("extract_softmax", "basis_queries"),
                     ("extract_softmax", "one_row_calls"), ("label_from_gradient", "largest_row"),
                     ("label_from_gradient", "largest_abs_sum")]:
        assert_passes_on_seeds(EXERCISE.questions[name], namespace[fn], range(20))


def test_the_check_compares_up_to_a_common_row_and_no_more():
    """Built from the victim's own parameters (read off the grader's API, which a submission cannot do): the
    truth plus one common row passes; the truth plus a per-row offset, or times a constant, fails although the
    latter agrees on every label."""
    question = EXERCISE.questions["extract_softmax"]

    def from_truth(change):
        def answer(query, num_features, num_classes, budget, generator):
            if budget < num_features + 1:
                raise ValueError("budget")
            query(torch.rand(1, num_features, dtype=torch.float64))
            return change(query._W.clone(), query._b.clone())
        return answer

    common = from_truth(lambda W, b: (W + torch.linspace(-3, 5, W.shape[1], dtype=W.dtype), b - 7.0))
    assert_passes_on_seeds(question, common, range(20))
    per_row = from_truth(lambda W, b: (W + torch.arange(len(W), dtype=W.dtype)[:, None] * 0.01, b))
    per_row_b = from_truth(lambda W, b: (W, b + torch.arange(len(b), dtype=b.dtype) * 0.01))
    scaled = from_truth(lambda W, b: (W * 1.01, b * 1.01))
    for fn in (per_row, per_row_b, scaled):
        for seed in range(20):
            failed = {p.description for p in run_question(question, fn, seed=seed).properties if not p.passed}
            assert any(d.startswith("W and b equal") for d in failed), seed
    scaled_result = run_question(question, scaled, seed=0)
    assert [p.passed for p in scaled_result.properties] == [True, True, True, False, False, True]


def test_float32_answers_are_told_what_went_wrong():
    """A float32 solve cast back to float64 is off by 1e-7 to 1e-2 of the scale, far more than float64 rounding: it
    fails on most seeds (a well-conditioned draw can land within 1e-6), and the message says that something
    (float32, an epsilon) changed the equations, without blaming float32 alone.
    A float64 solve cast to float32 at the end loses only the dtype point; a float32 solve is told "float32
    rounding"."""
    code = """
    def cast_back(query, num_features, num_classes, budget, generator):
        d = num_features
        if budget < d + 1:
            raise ValueError("budget too small")
        x = torch.rand(d + 1, d, generator=generator)
        A = torch.cat([x, torch.ones(len(x), 1)], 1)
        p = query(x).float()
        theta = torch.linalg.lstsq(A, p.log() - p[:, :1].log()).solution.double()
        return theta[:-1].T.contiguous(), theta[-1].contiguous()

    def cast_at_the_end(query, num_features, num_classes, budget, generator):
        d = num_features
        if budget < d + 1:
            raise ValueError("budget too small")
        x = torch.rand(d + 1, d, generator=generator, dtype=torch.float64)
        A = torch.cat([x, torch.ones(len(x), 1, dtype=torch.float64)], 1)
        log_p = query(x).log()
        theta = torch.linalg.lstsq(A, log_p - log_p[:, :1]).solution
        return theta[:-1].T.float(), theta[-1].float()
    """
    namespace = {"torch": torch}
    exec(textwrap.dedent(code), namespace)
    question = EXERCISE.questions["extract_softmax"]
    reports = [run_question(question, namespace["cast_back"], seed=seed).report() for seed in range(900, 925)]
    failed = [r for r in reports if "[FAIL] W and b equal" in r]
    assert len(failed) >= 20 and all("float32 queries, log or solve" in r for r in failed)
    for seed in range(900, 925):
        result = run_question(question, namespace["cast_at_the_end"], seed=seed)
        assert [p.passed for p in result.properties] == [False, True, True, True, True, True], result.report()
        assert "expected float64 tensors" in result.report()
    float32_solve = run_question(question, lambda *a: tuple(t.float() for t in namespace["cast_back"](*a)), seed=3)
    assert "float32 rounding" in float32_solve.report()


def test_the_whole_set_runs_in_seconds(solutions):
    assert_set_runs_quickly(EXERCISE, solutions)


def test_the_instances_keep_their_promises():
    """The generators behind the every-seed guarantees: more features than classes, a budget in [d + 2, 2d + 1]
    (or exactly d + 1) with K >= 4, a rare class (an epsilon inside the log changes the equations), agreement inputs
    with at least 3 of the victim's labels, row means and biases spaced >= 0.4 apart, a common row of norm >= 3;
    gradients whose true row is the only negative one, with the special cases present."""
    for seed in range(1000):
        rng = torch.Generator().manual_seed(seed)
        W, b, budget = ch09._victim(rng)
        k, d = W.shape
        assert 4 <= k <= 6 and k < d <= 12 and d + 2 <= budget <= 2 * d + 1
        W1, b1, budget1 = ch09._victim(torch.Generator().manual_seed(seed), minimal_budget=True)
        assert torch.equal(W1, W) and torch.equal(b1, b) and budget1 == d + 1  # the smallest budget that suffices
        if seed < 200:  # the rare class: some probability below exp(-RARE_GAP) at every input of [-1, 1]^d
            x = 2 * torch.rand(4000, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) - 1
            corners = (torch.rand(64, d, generator=torch.Generator().manual_seed(seed)) < 0.5).double() * 2 - 1
            probs = torch.softmax(torch.cat([x, corners]) @ W.T + b, 1)
            assert float(probs.min(1).values.max()) < 1e-13
            labels = (ch09._agreement_inputs(torch.Generator().manual_seed(seed), W, b) @ W.T + b).argmax(1)
            assert len(labels.unique()) >= 3  # the agreement check sees the victim's labels vary
        assert k * (d + 1) > budget and 2 * (d + 1) > budget and budget < 100 and budget // k < d + 1
        means = W.mean(1).sort().values
        assert (means[1:] - means[:-1]).min() >= 0.4 - 1e-12
        spaced = b.sort().values
        assert (spaced[1:] - spaced[:-1]).min() >= 0.4 - 1e-12
        for activation in ("relu", "sigmoid", "tanh"):
            cases = list(ch09._gradient_cases(rng, activation))
            assert len(cases) == (7 if activation == "relu" else 6)
            for grad, label in cases:
                sums = grad.sum(1)
                others = torch.arange(len(sums)) != label
                if activation == "tanh":  # features of both signs: only the sizes of the rows single c out
                    assert grad.norm(dim=1)[label] > grad.norm(dim=1)[others].max()
                else:
                    assert sums[label] < 0 and (sums[others] > 0).all()
                assert ch09._reference_label(grad) == label
            if activation == "tanh":  # the first case: the true row's sum is the only positive one
                sums = cases[0][0].sum(1)
                assert sums[cases[0][1]] > 0 and int(sums.argmin()) != cases[0][1]
            (g5, l5), (g6, l6) = cases[4], cases[5]
            assert g5.shape[1] < g5.shape[0] and l5 >= g5.shape[1]
            assert g6.shape[1] >= 2 * g6.shape[0] and l6 >= 1
            if activation == "relu":
                g7, l7 = cases[6]
                assert not g7[:, 0].any() and not g7[:, -1].any() and l7 >= 1


_EX = """
        def extract_softmax(query, num_features, num_classes, budget, generator):
            d = num_features
            if budget < d + 1:
                raise ValueError("budget too small")"""
_QUERY = """
            x = torch.rand(d + 1, d, generator=generator, dtype=torch.float64)
            A = torch.cat([x, torch.ones(len(x), 1, dtype=torch.float64)], 1)
            p = query(x)"""
_SOLVE = """
            theta = torch.linalg.lstsq(A, Y).solution
            return theta[:-1].T.contiguous(), theta[-1].contiguous()"""

def _ex(*parts):
    return _EX + "".join(parts)


_WRONG = ["W and b equal", "the extracted model", "labels fresh"]  # the shape, the budget and the check pass
_ARGMAX = ["W and b equal", "the extracted model"]  # right labels everywhere, wrong model
_SHAPE = ["returns (W, b)", *_WRONG]

MISTAKES = [
    ("extract_softmax", "a fresh set of d + 1 queries per class, each fitting its own log p_k", _EX + """
            rows = []
            for k in range(num_classes):
                x = torch.rand(d + 1, d, generator=generator, dtype=torch.float64)
                A = torch.cat([x, torch.ones(len(x), 1, dtype=torch.float64)], 1)
                rows.append(torch.linalg.lstsq(A, query(x)[:, k:k + 1].log()).solution[:, 0])
            theta = torch.stack(rows)
            return theta[:, :-1].contiguous(), theta[:, -1].contiguous()""", ["asks the API", *_WRONG],
     "fresh set of queries per class"),
    ("extract_softmax", "the budget split among the classes, each fitting its own log p_k", _EX + """
            n = budget // num_classes
            rows = []
            for k in range(num_classes):
                x = torch.rand(n, d, generator=generator, dtype=torch.float64)
                A = torch.cat([x, torch.ones(n, 1, dtype=torch.float64)], 1)
                rows.append(torch.linalg.lstsq(A, query(x)[:, k:k + 1].log(), driver="gelsd").solution[:, 0])
            theta = torch.stack(rows)
            return theta[:, :-1].contiguous(), theta[:, -1].contiguous()""", _WRONG, "same queries for every class"),
    ("extract_softmax", "each class fitted on its own window of d + 1 of the queries", _EX + """
            x = torch.rand(budget, d, generator=generator, dtype=torch.float64)
            A = torch.cat([x, torch.ones(budget, 1, dtype=torch.float64)], 1)
            log_p = query(x).log()
            rows = []
            for k in range(num_classes):
                s = k % (budget - d)
                rows.append(torch.linalg.lstsq(A[s:s + d + 1], log_p[s:s + d + 1, k:k + 1]).solution[:, 0])
            theta = torch.stack(rows)
            return theta[:, :-1].contiguous(), theta[:, -1].contiguous()""", _WRONG, "same queries for every class"),
    ("extract_softmax", "log base 10", _ex(_QUERY, """
            Y = p.log10() - p[:, :1].log10()""", _SOLVE), _ARGMAX, "base 10"),
    ("extract_softmax", "log base 2", _ex(_QUERY, """
            Y = p.log2() - p[:, :1].log2()""", _SOLVE), _ARGMAX, "base 2"),
    ("extract_softmax", "normalised to unit norm", _ex(_QUERY, """
            Y = p.log() - p[:, :1].log()
            theta = torch.linalg.lstsq(A, Y).solution
            theta = theta / theta.norm()
            return theta[:-1].T.contiguous(), theta[-1].contiguous()"""), _ARGMAX, "times"),
    ("extract_softmax", "a substitute fitted to the labels (learning-based, argmax only)", _EX + """
            x = torch.rand(budget, d, generator=generator, dtype=torch.float64)
            y = query(x).argmax(1)
            W = torch.zeros(num_classes, d, dtype=torch.float64, requires_grad=True)
            b = torch.zeros(num_classes, dtype=torch.float64, requires_grad=True)
            opt = torch.optim.Adam([W, b], lr=0.1)
            for _ in range(200):
                opt.zero_grad()
                torch.nn.functional.cross_entropy(x @ W.T + b, y).backward()
                opt.step()
            return W.detach(), b.detach()""", _WRONG, "same queries for every class"),
    ("extract_softmax", "rows centred over the features (a per-row offset)", _ex(_QUERY, """
            Y = p.log() - p[:, :1].log()
            theta = torch.linalg.lstsq(A, Y).solution
            W, b = theta[:-1].T, theta[-1]
            return W - W.mean(1, keepdim=True), b - b.mean()"""), _WRONG, "constant per class"),
    ("extract_softmax", "the truth plus a per-row offset in b: b read off one query as if at x = 0", _ex(_QUERY, """
            Y = p.log() - p[:, :1].log()
            theta = torch.linalg.lstsq(A, Y).solution
            return theta[:-1].T.contiguous(), Y[0].contiguous()"""), _WRONG, "b is not"),
    ("extract_softmax", "b left at zero", _ex(_QUERY, """
            Y = p.log() - p[:, :1].log()
            theta = torch.linalg.lstsq(A, Y).solution
            return theta[:-1].T.contiguous(), torch.zeros(num_classes, dtype=torch.float64)"""), _WRONG, "b is not"),
    ("extract_softmax", "no intercept column", _ex("""
            x = torch.rand(d + 1, d, generator=generator, dtype=torch.float64)
            p = query(x)
            Wt = torch.linalg.lstsq(x, p.log() - p[:, :1].log()).solution
            return Wt.T.contiguous(), torch.zeros(num_classes, dtype=torch.float64)"""), _WRONG,
     "same queries for every class"),
    ("extract_softmax", "one-vs-rest: each class as its own logistic regression, log(p / (1 - p))", _ex(_QUERY, """
            Y = (p / (1 - p)).log()""", _SOLVE), _WRONG, "same queries for every class"),
    ("extract_softmax", "linear regression on the probabilities themselves", _ex(_QUERY, """
            Y = p""", _SOLVE), _WRONG, "same queries for every class"),
    ("extract_softmax", "W transposed", _ex(_QUERY, """
            Y = p.log() - p[:, :1].log()
            theta = torch.linalg.lstsq(A, Y).solution
            return theta[:-1].contiguous(), theta[-1].contiguous()"""), _SHAPE, "transposed"),
    ("extract_softmax", "(b, W) instead of (W, b)", _ex(_QUERY, """
            Y = p.log() - p[:, :1].log()
            theta = torch.linalg.lstsq(A, Y).solution
            return theta[-1].contiguous(), theta[:-1].T.contiguous()"""), _SHAPE, "swapped"),
    ("extract_softmax", "the reference class's row dropped (K - 1 rows)", _ex(_QUERY, """
            Y = p[:, 1:].log() - p[:, :1].log()""", _SOLVE), _SHAPE, "reference class included"),
    ("extract_softmax", "twice the needed queries", _ex("""
            x = torch.rand(2 * (d + 1), d, generator=generator, dtype=torch.float64)
            A = torch.cat([x, torch.ones(len(x), 1, dtype=torch.float64)], 1)
            p = query(x)
            Y = p.log() - p[:, :1].log()""", _SOLVE), ["asks the API"], "asked"),
    ("extract_softmax", "a fixed 100 queries whatever the budget", _ex("""
            x = torch.rand(100, d, generator=generator, dtype=torch.float64)
            A = torch.cat([x, torch.ones(len(x), 1, dtype=torch.float64)], 1)
            p = query(x)
            Y = p.log() - p[:, :1].log()""", _SOLVE), ["asks the API"], "asked 100 inputs"),
    ("extract_softmax", "a float32 solve", _EX + """
            x = torch.rand(budget, d, generator=generator)
            A = torch.cat([x, torch.ones(len(x), 1)], 1)
            p = query(x).float()
            Y = p.log() - p[:, :1].log()""" + _SOLVE, ["returns (W, b)", "W and b equal"], "float64"),
    ("extract_softmax", "a budget of exactly d + 1 rejected (budget <= d + 1)", """
        def extract_softmax(query, num_features, num_classes, budget, generator):
            d = num_features
            if budget <= d + 1:
                raise ValueError("budget must exceed num_features + 1")""" + _QUERY + """
            Y = p.log() - p[:, :1].log()""" + _SOLVE, ["asks the API", "W and b equal"], "raised ValueError"),
    ("extract_softmax", "always d + 2 queries, even when the budget is d + 1", _EX + """
            x = torch.rand(d + 2, d, generator=generator, dtype=torch.float64)
            A = torch.cat([x, torch.ones(len(x), 1, dtype=torch.float64)], 1)
            p = query(x)
            Y = p.log() - p[:, :1].log()""" + _SOLVE, ["asks the API"], "asked"),
    ("extract_softmax", "a 'safe' log: log(p + 1e-12)", _ex(_QUERY, """
            Y = (p + 1e-12).log() - (p[:, :1] + 1e-12).log()""", _SOLVE), ["W and b equal"], "epsilon"),
    ("extract_softmax", "a clamped log: p.clamp(1e-6, 1 - 1e-6).log()", _ex(_QUERY, """
            q = p.clamp(1e-6, 1 - 1e-6)
            Y = q.log() - q[:, :1].log()""", _SOLVE), None, "epsilon"),
    ("extract_softmax", "the parameters times 1.001", _ex(_QUERY, """
            Y = p.log() - p[:, :1].log()
            theta = torch.linalg.lstsq(A, Y).solution * 1.001
            return theta[:-1].T.contiguous(), theta[-1].contiguous()"""), None, "times 1.001"),
    ("extract_softmax", "each class fitted on its own random d + 1 of the queries", _EX + """
            x = torch.rand(budget, d, generator=generator, dtype=torch.float64)
            A = torch.cat([x, torch.ones(budget, 1, dtype=torch.float64)], 1)
            log_p = query(x).log()
            rows = []
            for k in range(num_classes):
                idx = torch.randperm(budget, generator=generator)[:d + 1]
                rows.append(torch.linalg.lstsq(A[idx], log_p[idx, k:k + 1]).solution[:, 0])
            theta = torch.stack(rows)
            return theta[:, :-1].contiguous(), theta[:, -1].contiguous()""", _WRONG, "same queries for every class"),
    ("extract_softmax", "log_softmax of the probabilities (not their log)", _ex(_QUERY, """
            Y = torch.log_softmax(p, 1)""", _SOLVE), _WRONG, "same queries for every class"),
    ("extract_softmax", "the basis queries 0, e_1, ..., e_d plus 2d 'validation' queries", _EX + """
            b = query(torch.zeros(1, d, dtype=torch.float64)).log()[0]
            W = (query(torch.eye(d, dtype=torch.float64)).log() - b).T.contiguous()
            query(torch.rand(2 * d, d, generator=generator, dtype=torch.float64))
            return W, b""", ["asks the API"], "asked"),
    ("extract_softmax", "a budget check that demands K(d + 1) queries", """
        def extract_softmax(query, num_features, num_classes, budget, generator):
            d = num_features
            if budget < num_classes * (d + 1):
                raise ValueError(f"budget must be at least {num_classes * (d + 1)}")""" + _QUERY + """
            Y = p.log() - p[:, :1].log()""" + _SOLVE, None, "raised ValueError"),
    ("extract_softmax", "no check of the budget", """
        def extract_softmax(query, num_features, num_classes, budget, generator):
            d = num_features
            x = torch.rand(min(budget, d + 1), d, generator=generator, dtype=torch.float64)
            A = torch.cat([x, torch.ones(len(x), 1, dtype=torch.float64)], 1)
            p = query(x)
            Y = p.log() - p[:, :1].log()""" + _SOLVE, ["raises a ValueError"], "expected a ValueError"),
]

_FINDS = ["finds the label behind ReLU", "finds the label behind sigmoid", "finds the label behind tanh"]
_LG = """
        def label_from_gradient(weight_grad):
            if weight_grad.dim() != 2:
                raise ValueError("weight_grad must be 2-D")"""
MISTAKES += [
    ("label_from_gradient", "argmax of the row sums (the most positive row)", _LG + """
            return int(weight_grad.sum(1).argmax())""", None, "LARGEST"),
    ("label_from_gradient", "the row with the negative sum (right only for non-negative features)", _LG + """
            return int(weight_grad.sum(1).argmin())""", ["finds the label behind tanh"], "tanh"),
    ("label_from_gradient", "the row of the most negative entry (right only for non-negative features)", _LG + """
            return int(weight_grad.argmin()) // weight_grad.shape[1]""", ["finds the label behind tanh"], "tanh"),
    ("label_from_gradient", "sums over the wrong axis (classes instead of features)", _LG + """
            return int(weight_grad.sum(0).argmin())""", None, "dim=1"),
    ("label_from_gradient", "a flat argmin unravelled with K instead of H", _LG + """
            return int(weight_grad.argmin()) // weight_grad.shape[0]""", None, "label"),
    ("label_from_gradient", "the sign of the first feature's column only", _LG + """
            return int(weight_grad[:, 0].argmin())""", None, "is dead"),
    ("label_from_gradient", "returns a tensor", _LG + """
            return weight_grad.sum(1).argmin()""", ["returns a Python int", *_FINDS], "int(...)"),
    ("label_from_gradient", "no validation", """
        def label_from_gradient(weight_grad):
            return int(weight_grad.reshape(len(weight_grad), -1).norm(dim=1).argmax())""", ["raises a ValueError"],
     "expected a ValueError"),
]

_EXACT, _EVERY, _NO_FALSE = "names exactly", "names every true", "names no false"
for letters, failing, message in [("ace", None, None), ("ac", [_EXACT, _EVERY], "missing"),
                                  ("", [_EXACT, _EVERY, _NO_FALSE], "not an answer"),
                                  ("aceb", [_EXACT, _NO_FALSE], "d + 1 queries"),
                                  ("aced", [_EXACT, _NO_FALSE], "labels only"),
                                  ("acef", [_EXACT, _NO_FALSE], "how many examples"),
                                  ("aceg", [_EXACT, _NO_FALSE], "costs accuracy"),
                                  ("aceh", [_EXACT, _NO_FALSE], "countermeasure"),
                                  ("bdfg", [_EXACT, _EVERY, _NO_FALSE], "d + 1 queries"),
                                  ("abcdefgh", [_EXACT, _EVERY, _NO_FALSE], "not an answer"),
                                  ("bdfgh", [_EXACT, _EVERY, _NO_FALSE], "d + 1 queries"),
                                  ("acez", [_EXACT, _EVERY, _NO_FALSE], "'z'")]:
    if failing is not None:
        MISTAKES.append(("attack_statements", repr(letters),
                         f"def attack_statements():\n    return {letters!r}", failing, message))
MISTAKES.append(("attack_statements", "a list of letters", "def attack_statements():\n    return ['a', 'c', 'e']",
                 None, "expected a string"))


def _namespace() -> dict:
    return {"torch": torch}


@pytest.mark.parametrize("name, label, code, failing, message", MISTAKES, ids=[m[1] for m in MISTAKES])
def test_each_mistake_fails_its_property(name, label, code, failing, message):
    assert_mistake_fails(EXERCISE.questions[name], code, name, _namespace(), failing, message)


_DISAGREE = [m for m in MISTAKES if m[3] is not None and "labels fresh" in m[3]]


def test_property_fails_gives_run_questions_verdict_for_that_property(solutions):
    """``property_fails`` (one property, alone) agrees with ``run_question`` (all of them) on a right and a
    wrong answer, so the test below loses nothing by running the agreement check alone."""
    name, label, code, *_ = _DISAGREE[0]
    namespace = _namespace()
    exec(textwrap.dedent(code), namespace)
    question = EXERCISE.questions[name]
    index = next(i for i, p in enumerate(question.properties) if p.description.startswith("labels fresh"))
    for fn in (namespace[name], solutions[name]):
        for seed in (900, 901):
            full = run_question(question, fn, seed=seed).properties[index].passed
            assert property_fails(question, fn, seed, "labels fresh") == (not full), (label, seed)


@pytest.mark.parametrize("name, label, code, failing, message", _DISAGREE, ids=[m[1] for m in _DISAGREE])
def test_each_mistake_said_to_disagree_fails_the_agreement_check_on_every_seed(name, label, code, failing, message):
    """Issue 14: the mistakes that ignore the shift invariance fail the agreement test itself, not only the
    parameter check, on every seed (the agreement inputs cover [-1, 1]^d and straddle the decision boundaries)."""
    namespace = _namespace()
    exec(textwrap.dedent(code), namespace)
    question = EXERCISE.questions[name]
    for seed in SEEDS:
        assert property_fails(question, namespace[name], seed, "labels fresh"), (label, seed)


@pytest.mark.parametrize("name, label, code, failing, message", MISTAKES, ids=[m[1] for m in MISTAKES])
def test_each_mistake_fails_on_every_seed(name, label, code, failing, message):
    assert_fails_on_every_seed(EXERCISE.questions[name], code, name, _namespace(), SEEDS, label)


def test_every_question_has_listed_mistakes():
    assert {m[0] for m in MISTAKES} == set(QUESTIONS)


def test_the_statements_in_the_notebook_are_the_checks():
    """The question the student reads lists the very statements the checks grade."""
    import nbformat

    text = "\n".join(c.source for c in nbformat.read(SOURCE, as_version=4).cells if c.cell_type == "markdown")
    flat = " ".join(text.split())
    for letter, statement in ch09.STATEMENTS.items():
        assert f"**{letter}.** {statement}" in flat, letter


# Executing the student and source notebooks is covered for every set by test_grading_notebooks.py.
