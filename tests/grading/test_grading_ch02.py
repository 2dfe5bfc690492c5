"""The chapter-2 checks: every reference solution passes on any seed, and each typical mistake fails the
property written for it, with a message that says what to fix."""

import pytest
import torch
import torch.nn.functional as F

from grading_helpers import assert_mistake_fails, assert_passes_on_seeds, assert_set_runs_quickly, QUESTIONS, SOURCE, exec_notebook_code, read
from mlsec_kit.grading import get_exercise

EXERCISE = get_exercise("02_ml_basics")


@pytest.fixture(scope="module")
def solutions() -> dict:
    """The source notebook's namespace after running it here (its own self-check cell included)."""
    return exec_notebook_code(read(SOURCE))


def test_the_set_declares_the_chapter_questions():
    assert tuple(EXERCISE.questions) == QUESTIONS
    assert EXERCISE.title == "Exercises: machine learning with mlsec_kit"
    assert all(3 <= q.max_score <= 5 for q in EXERCISE.questions.values())


@pytest.mark.parametrize("name", QUESTIONS)
def test_every_solution_passes_every_check_on_many_seeds(solutions, name):
    assert_passes_on_seeds(EXERCISE.questions[name], solutions[name], range(10_000, 10_000 + 40))


def test_the_whole_set_runs_in_seconds(solutions):
    assert_set_runs_quickly(EXERCISE, solutions)


MISTAKES = [
    ("standardize", "test statistics", """
        def standardize(X_train, X_test):
            s = lambda X: (X - X.mean(0)) / X.std(0, correction=0).clamp_min(1e-12)
            return s(X_train), s(X_test)""", ["scales the test set"], "test set's own mean and std"),
    ("standardize", "torch.std's default", """
        def standardize(X_train, X_test):
            m, s = X_train.mean(0), X_train.std(0)
            s = torch.where(s > 0, s, torch.ones_like(s))
            return (X_train - m) / s, (X_test - m) / s""", ["training columns"], "use correction=0"),
    ("standardize", "no guard for std 0", """
        def standardize(X_train, X_test):
            m, s = X_train.mean(0), X_train.std(0, correction=0)
            return (X_train - m) / s, (X_test - m) / s""", ["a constant training column"], "NaN"),
    ("standardize", "in place", """
        def standardize(X_train, X_test):
            m, s = X_train.mean(0), X_train.std(0, correction=0).clamp_min(1e-12)
            X_train -= m; X_train /= s; X_test -= m; X_test /= s
            return X_train, X_test""", ["leaves X_train"], "in place"),
    ("standardize", "numpy out", """
        def standardize(X_train, X_test):
            return X_train.numpy(), X_test.numpy()""", None, "expected a torch tensor"),
    ("accuracy", "a tensor", """
        def accuracy(logits, y):
            return (logits.argmax(1) == y).float().mean()""", ["returns a Python float"], "call .item()"),
    ("accuracy", "a count", """
        def accuracy(logits, y):
            return float((logits.argmax(1) == y).sum())""", ["equals the fraction", "works on logits"],
     "that is the count"),
    ("accuracy", "numpy on a graph", """
        def accuracy(logits, y):
            return float((logits.numpy().argmax(1) == y.numpy()).mean())""", ["works on logits"],
     "raised RuntimeError"),
    ("train_one_epoch", "no zero_grad", """
        def train_one_epoch(model, loader, optimizer):
            total, n = 0.0, 0
            for X, y in loader:
                loss = F.cross_entropy(model(X), y)
                loss.backward(); optimizer.step()
                total, n = total + loss.item() * len(y), n + len(y)
            return total / n""", ["takes one SGD step"], "gradient reset"),
    ("train_one_epoch", "unweighted mean", """
        def train_one_epoch(model, loader, optimizer):
            losses = []
            for X, y in loader:
                optimizer.zero_grad(); loss = F.cross_entropy(model(X), y)
                loss.backward(); optimizer.step(); losses.append(loss.item())
            return sum(losses) / len(losses)""", ["returns the mean"], "unweighted mean"),
    ("train_one_epoch", "last batch", """
        def train_one_epoch(model, loader, optimizer):
            for X, y in loader:
                optimizer.zero_grad(); loss = F.cross_entropy(model(X), y)
                loss.backward(); optimizer.step()
            return loss.item()""", ["returns the mean"], "last batch"),
    ("train_one_epoch", "no step", """
        def train_one_epoch(model, loader, optimizer):
            total, n = 0.0, 0
            for X, y in loader:
                optimizer.zero_grad(); loss = F.cross_entropy(model(X), y); loss.backward()
                total, n = total + loss.item() * len(y), n + len(y)
            return total / n""",
     ["updates the model", "takes one SGD step", "lowers the loss"], "optimizer.step()"),
    ("per_example_loss", "no eval, no no_grad", """
        def per_example_loss(model, X, y):
            return F.cross_entropy(model(X), y, reduction="none")""",
     ["computes the losses in evaluation mode", "leaves the model"], "model.eval()"),
    ("per_example_loss", "log-probabilities", """
        def per_example_loss(model, X, y):
            with torch.no_grad():
                was = model.training; model.eval()
                out = -F.cross_entropy(model(X), y, reduction="none"); model.train(was)
            return out""", ["losses are non-negative", "entry i is"], "wrong sign"),
    ("per_example_loss", "mean only", """
        def per_example_loss(model, X, y):
            with torch.no_grad():
                return F.cross_entropy(model(X), y)""", None, "returned shape ()"),
    ("generalization_gap", "test minus train", """
        def generalization_gap(model, train, test):
            with torch.no_grad():
                return accuracy(model(test[0]), test[1]) - accuracy(model(train[0]), train[1])""",
     ["a model that memorised", "is train minus test", "measures in evaluation mode"], "sign is flipped"),
    ("generalization_gap", "a tensor", """
        def generalization_gap(model, train, test):
            acc = lambda X, y: (model(X).argmax(1) == y).float().mean()
            return acc(*train) - acc(*test)""", ["returns a Python float", "measures in evaluation mode"],
     "call .item()"),
    ("generalization_gap", "measured in train mode", """
        def generalization_gap(model, train, test):
            with torch.no_grad():
                return accuracy(model(train[0]), train[1]) - accuracy(model(test[0]), test[1])""",
     ["measures in evaluation mode"], "model.eval()"),
    ("generalization_gap", "eval mode left on", """
        def generalization_gap(model, train, test):
            model.eval()
            with torch.no_grad():
                return accuracy(model(train[0]), train[1]) - accuracy(model(test[0]), test[1])""",
     ["measures in evaluation mode"], "put it back"),
    ("membership_chance", "always one half", """
        def membership_chance(num_members, num_non_members):
            return 0.5""", ["is the accuracy of always guessing"], "balanced set"),
    ("membership_chance", "the members' share", """
        def membership_chance(num_members, num_non_members):
            return num_members / (num_members + num_non_members)""",
     ["is the accuracy of always guessing", "is 1/2"], "members' share"),
    ("membership_chance", "the smaller group", """
        def membership_chance(num_members, num_non_members):
            return min(num_members, num_non_members) / (num_members + num_non_members)""",
     ["is the accuracy of always guessing", "is 1/2"], "always says"),
    ("membership_chance", "integer division", """
        def membership_chance(num_members, num_non_members):
            return max(num_members, num_non_members) // (num_members + num_non_members)""", None, "expected a Python float"),
]


@pytest.mark.parametrize("name, label, code, failing, message", MISTAKES[-4:], ids=[m[1] for m in MISTAKES[-4:]])
def test_each_membership_chance_mistake_fails_on_every_seed(name, label, code, failing, message):
    """The conceptual question's wrong answers fail on every seed the grader may draw, not just one."""
    import textwrap

    from mlsec_kit.grading import run_question
    namespace = {}
    exec(textwrap.dedent(code), namespace)
    for seed in range(40_000, 40_020):
        result = run_question(EXERCISE.questions[name], namespace[name], seed=seed)
        assert not result.passed and any(message in p.message for p in result.properties if not p.passed), (
            f"seed {seed}: " + result.report())


@pytest.mark.parametrize("label", ["measured in train mode", "eval mode left on"])
def test_each_generalization_gap_mode_mistake_fails_on_every_seed(solutions, label):
    """Dropout makes the train-mode gap differ on every seed, and the mode check does not depend on chance."""
    import textwrap

    from mlsec_kit.grading import run_question
    (_, _, code, _, message), = [m for m in MISTAKES if m[1] == label]
    namespace = {"torch": torch, "accuracy": solutions["accuracy"]}
    exec(textwrap.dedent(code), namespace)
    for seed in range(40_000, 40_020):
        result = run_question(EXERCISE.questions["generalization_gap"], namespace["generalization_gap"], seed=seed)
        assert not result.passed and any(message in p.message for p in result.properties if not p.passed), (
            f"seed {seed}: " + result.report())


@pytest.mark.parametrize("name, label, code, failing, message", MISTAKES, ids=[m[1] for m in MISTAKES])
def test_each_mistake_fails_its_property(solutions, name, label, code, failing, message):
    assert_mistake_fails(EXERCISE.questions[name], code, name, {"torch": torch, "F": F, "accuracy": solutions["accuracy"]}, failing, message)
