"""Autograded exercises: inline self-checks for students, and a grader for a folder of notebooks.

In an exercise notebook::

    from mlsec_kit.grading import check
    check("standardize", standardize)   # property checks on fresh random inputs, one line each

For an instructor::

    python -m mlsec_kit.grading grade 02_ml_basics submissions/ --out grades.csv

See the teaching guide of the book for how to run a course and how to write a new exercise set.
"""
from .core import (DEFAULT_TIMEOUT, CheckFailure, CheckResult, ExerciseSet, Property, PropertyResult, Question,
                   check, exercise_ids, find_question, get_exercise, run_question)
from .limits import TimeLimitExceeded, time_limit

__all__ = ["check", "run_question", "get_exercise", "exercise_ids", "find_question", "ExerciseSet", "Question",
           "Property", "CheckFailure", "CheckResult", "PropertyResult", "TimeLimitExceeded", "time_limit",
           "DEFAULT_TIMEOUT"]
