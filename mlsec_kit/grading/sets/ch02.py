"""Checks of the chapter-2 exercise set: standardising data, accuracy, a training epoch, per-example
losses and the generalisation gap.

Every property draws a tiny random problem (a few dozen rows, a linear model), so the whole set runs in
a few seconds on a laptop CPU. Student functions take and return torch tensors; ``accuracy``,
``train_one_epoch`` and ``generalization_gap`` return Python floats (``.item()``), not 0-dim tensors.
"""
from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from ..core import ExerciseSet
from ..expect import call, describe, expect_float, expect_pair, expect_tensor, fail, fmt, to_float
from ..instances import batches, blobs, init_normal, linear, max_diff, params, randint

SET = ExerciseSet("02_ml_basics", "Exercises: machine learning with mlsec_kit", chapter=2)


# ---- (a) standardize ----------------------------------------------------------------------------------
standardize = SET.question("standardize", "standardize(X_train, X_test) -> (Z_train, Z_test)",
                           forbid=("mlsec_kit.data.small.standardize",))


def _std_instance(rng: torch.Generator, dtype: torch.dtype = torch.float32):
    """Train and test sets whose columns have different means and scales, and differ from each other."""
    n, m, d = randint(rng, 20, 60), randint(rng, 8, 30), randint(rng, 2, 6)
    scale = torch.rand(d, generator=rng) * 4 + 0.5
    shift = torch.randn(d, generator=rng) * 5
    X_train = torch.randn(n, d, generator=rng) * scale + shift
    X_test = torch.randn(m, d, generator=rng) * scale * 2 + shift + 3
    return X_train.to(dtype), X_test.to(dtype)


def _standardized(fn, X_train: torch.Tensor, X_test: torch.Tensor):
    """Call ``fn`` on copies and check it returned two tensors shaped like the inputs."""
    out = call(fn, X_train.clone(), X_test.clone())
    Z_train, Z_test = expect_pair(out, "standardize")
    Z_train = expect_tensor(Z_train, "standardize (Z_train)", shape=X_train.shape)
    Z_test = expect_tensor(Z_test, "standardize (Z_test)", shape=X_test.shape)
    return Z_train, Z_test


@standardize.prop("returns (Z_train, Z_test) with the inputs' shapes and dtype")
def _std_shapes(fn, rng):
    for dtype in (torch.float32, torch.float64):
        X_train, X_test = _std_instance(rng, dtype)
        Z_train, Z_test = _standardized(fn, X_train, X_test)
        if Z_train.dtype != dtype or Z_test.dtype != dtype:
            fail(f"returned {Z_train.dtype} and {Z_test.dtype} for {dtype} inputs; keep the input dtype")


@standardize.prop("training columns have mean 0 and std 1 (population std, correction=0)")
def _std_train_moments(fn, rng):
    X_train, X_test = _std_instance(rng)
    Z_train, _ = _standardized(fn, X_train, X_test)
    Z = Z_train.double()
    mean, std = Z.mean(0), Z.std(0, correction=0)
    j = int(mean.abs().argmax())
    if mean[j].abs() > 1e-3:
        fail(f"column {j} of Z_train has mean {fmt(mean[j])}; expected 0 (on X_train {tuple(X_train.shape)})")
    j = int((std - 1).abs().argmax())
    if (std[j] - 1).abs() > 1e-3:
        n = X_train.shape[0]
        hint = (" — that is what torch.std's default correction=1 gives; use correction=0"
                if abs(float(std[j]) - math.sqrt((n - 1) / n)) < 1e-3 else "")
        fail(f"column {j} of Z_train has std {fmt(std[j])}; expected 1 "
             f"(on X_train {tuple(X_train.shape)}){hint}")


@standardize.prop("scales the test set with the training set's mean and std")
def _std_test_uses_train(fn, rng):
    X_train, X_test = _std_instance(rng)
    _, Z_test = _standardized(fn, X_train, X_test)
    Xtr, Xte, Z = X_train.double(), X_test.double(), Z_test.double()
    mean = Xtr.mean(0)
    # either std convention is accepted here: this property is about *whose* statistics are used
    candidates = [(Xte - mean) / Xtr.std(0, correction=c) for c in (0, 1)]
    if min(float((Z - ref).abs().max()) for ref in candidates) <= 1e-3:
        return
    own = (Xte - Xte.mean(0)) / Xte.std(0, correction=0)
    if float((Z - own).abs().max()) <= 1e-3:
        fail("Z_test is scaled with the test set's own mean and std; use the training set's "
             "(the test set stands for data the model has not seen)")
    err = (Z - candidates[0]).abs()
    j = int(err.max(0).values.argmax())
    fail(f"Z_test differs from (X_test - train mean) / train std by up to {fmt(err.max())} "
         f"(column {j}, X_train {tuple(X_train.shape)}, X_test {tuple(X_test.shape)})")


@standardize.prop("a constant training column gives finite values (0 in Z_train), not NaN")
def _std_constant_column(fn, rng):
    X_train, X_test = _std_instance(rng)
    j = randint(rng, 0, X_train.shape[1] - 1)
    X_train[:, j] = float(randint(rng, -3, 3))  # an exact float, so its mean is exact too
    Z_train, Z_test = _standardized(fn, X_train, X_test)
    for name, Z in (("Z_train", Z_train), ("Z_test", Z_test)):
        if not torch.isfinite(Z).all():
            fail(f"{name} has NaN or inf where column {j} of X_train is constant (std 0); "
                 "divide by 1 where the std is 0")
    if Z_train[:, j].abs().max() > 1e-6:
        fail(f"column {j} of X_train is constant but Z_train[:, {j}] is not 0 "
             f"(up to {fmt(Z_train[:, j].abs().max())})")


@standardize.prop("leaves X_train and X_test unchanged (no in-place edits)")
def _std_no_inplace(fn, rng):
    X_train, X_test = _std_instance(rng)
    saved = X_train.clone(), X_test.clone()
    call(fn, X_train, X_test)
    for name, X, X0 in (("X_train", X_train, saved[0]), ("X_test", X_test, saved[1])):
        if not torch.equal(X, X0):
            fail(f"standardize changed {name} in place (e.g. X -= mean); build new tensors instead")


# ---- (b) accuracy -------------------------------------------------------------------------------------
accuracy = SET.question("accuracy", "accuracy(logits, y) -> float", forbid=("mlsec_kit.train.accuracy",))


def _acc_instance(rng: torch.Generator, kind: str = "random"):
    n, c = randint(rng, 5, 50), randint(rng, 2, 10)
    logits = torch.randn(n, c, generator=rng) * 3
    y = torch.randint(0, c, (n,), generator=rng)
    if kind == "all right":
        y = logits.argmax(1)
    elif kind == "all wrong":
        y = (logits.argmax(1) + 1) % c
    return logits, y


@accuracy.prop("returns a Python float")
def _acc_float(fn, rng):
    logits, y = _acc_instance(rng)
    expect_float(call(fn, logits, y), f"accuracy(logits {tuple(logits.shape)}, y ({len(y)},))")


@accuracy.prop("equals the fraction of rows whose argmax is the label")
def _acc_value(fn, rng):
    for kind in ("random", "all right", "all wrong", "random", "random"):
        logits, y = _acc_instance(rng, kind)
        what = f"accuracy(logits {tuple(logits.shape)}, y ({len(y)},))"
        got = to_float(call(fn, logits, y), what)
        hits, n = int((logits.argmax(1) == y).sum()), len(y)
        if abs(got - hits / n) > 1e-6:
            hint = ("; that is the count, divide by the number of rows" if abs(got - hits) < 1e-6 and hits != 0
                    else "; that is a percentage, return a fraction" if abs(got - 100 * hits / n) < 1e-4
                    else "")
            fail(f"{what} = {fmt(got)}; expected {fmt(hits / n)} ({hits} of {n} rows have argmax == y){hint}")


@accuracy.prop("works on logits straight from a model (requiring grad) and stays in [0, 1]")
def _acc_from_model(fn, rng):
    X, y = blobs(rng, randint(rng, 10, 40), 3, 3)
    logits = linear(rng, 3, 3)(X)  # requires grad, like any model output
    got = to_float(call(fn, logits, y), "accuracy on a model's output")
    if not 0.0 <= got <= 1.0:
        fail(f"accuracy on a model's output = {fmt(got)}; expected a fraction in [0, 1]")


# ---- (c) train_one_epoch ------------------------------------------------------------------------------
train_one_epoch = SET.question("train_one_epoch", "train_one_epoch(model, loader, optimizer) -> float",
                               forbid=("mlsec_kit.train.fit",))


def _train_instance(rng: torch.Generator):
    """A blob problem, a linear model and the batch size (the last batch is always smaller)."""
    d, c, batch = randint(rng, 2, 5), randint(rng, 2, 4), randint(rng, 8, 16)
    n = batch * randint(rng, 3, 5) + randint(rng, 1, batch - 1)
    X, y = blobs(rng, n, d, c)
    return X, y, linear(rng, d, c), batch


def _epoch(fn, model, X, y, batch, lr):
    loader = batches(X, y, batch_size=batch)
    return call(fn, model, loader, torch.optim.SGD(model.parameters(), lr=lr), name="train_one_epoch")


@train_one_epoch.prop("returns the epoch's mean loss as a Python float")
def _epoch_float(fn, rng):
    X, y, model, batch = _train_instance(rng)
    expect_float(_epoch(fn, model, X, y, batch, 0.1), "train_one_epoch")


@train_one_epoch.prop("updates the model's parameters")
def _epoch_updates(fn, rng):
    X, y, model, batch = _train_instance(rng)
    before = params(model)
    _epoch(fn, model, X, y, batch, 0.1)
    if max_diff(before, params(model)) == 0:
        fail("no parameter changed after an epoch; call loss.backward() and optimizer.step() for each batch")


@train_one_epoch.prop("returns the mean of the batch losses, weighted by batch size")
def _epoch_mean(fn, rng):
    X, y, model, batch = _train_instance(rng)
    with torch.no_grad():  # sort by loss so the small last batch holds the worst examples
        order = F.cross_entropy(model(X), y, reduction="none").argsort()
        X, y = X[order], y[order]
        expected = float(F.cross_entropy(model(X), y))
        batch_losses = [float(F.cross_entropy(model(X[i:i + batch]), y[i:i + batch]))
                        for i in range(0, len(y), batch)]
    got = to_float(_epoch(fn, model, X, y, batch, 0.0), "train_one_epoch")  # lr 0: the model stays put
    if abs(got - expected) <= 1e-4 * max(1.0, expected):
        return
    hints = {"the unweighted mean of the batch losses (weight each by its batch size)":
             sum(batch_losses) / len(batch_losses),
             "the last batch's loss (average over the whole epoch)": batch_losses[-1],
             "the sum of the batch losses (divide by the number of examples)": sum(batch_losses)}
    hint = next((f"; that is {h}" for h, v in hints.items() if abs(got - v) <= 1e-4 * max(1.0, v)), "")
    fail(f"returned {fmt(got)} with lr=0 on {len(y)} examples in batches of {batch}; "
         f"expected the mean loss {fmt(expected)}{hint}")


@train_one_epoch.prop("takes one SGD step per batch, on that batch's gradient")
def _epoch_steps(fn, rng):
    X, y, model, batch = _train_instance(rng)
    reference = copy.deepcopy(model)
    _epoch(fn, model, X, y, batch, 0.5)
    optimizer = torch.optim.SGD(reference.parameters(), lr=0.5)
    for Xb, yb in batches(X, y, batch_size=batch):
        optimizer.zero_grad()
        F.cross_entropy(reference(Xb), yb).backward()
        optimizer.step()
    diff = max_diff(params(model), params(reference))
    if diff > 1e-5:
        fail(f"after one epoch the parameters differ from zero_grad/backward/step on each batch by up to "
             f"{fmt(diff)} ({len(y)} examples, batches of {batch}); is the gradient reset before each batch?")


@train_one_epoch.prop("lowers the loss over six epochs on a learnable problem")
def _epoch_learns(fn, rng):
    c, batch = randint(rng, 2, 4), randint(rng, 8, 16)
    d = c + randint(rng, 0, 2)
    centres = 2 * torch.eye(c, d)  # far apart, inputs of norm ~2: SGD(lr=0.5) is stable
    y = torch.randint(0, c, (batch * 4,), generator=rng)
    X = centres[y] + 0.3 * torch.randn(len(y), d, generator=rng)
    model = nn.Linear(d, c)
    with torch.no_grad():
        model.weight.zero_(), model.bias.zero_()  # the loss starts at log(c)
    before = math.log(c)
    loader = batches(X, y, batch_size=batch)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(6):
        call(fn, model, loader, optimizer, name="train_one_epoch")
    with torch.no_grad():
        after = float(F.cross_entropy(model(X), y))
    if not after < 0.5 * before:
        fail(f"the training loss went from {fmt(before)} to {fmt(after)} in six epochs of SGD(lr=0.5) "
             f"on {len(y)} separable examples; expected below {fmt(0.5 * before)}")


# ---- (d) per_example_loss -----------------------------------------------------------------------------
per_example_loss = SET.question("per_example_loss", "per_example_loss(model, X, y) -> tensor (N,)")


def _loss_instance(rng: torch.Generator, *, dropout: float = 0.0):
    d, c, n = randint(rng, 2, 6), randint(rng, 2, 5), randint(rng, 5, 40)
    X, y = blobs(rng, n, d, c, spread=1.0)
    model = init_normal(nn.Sequential(nn.Linear(d, 16), nn.ReLU(), nn.Dropout(dropout), nn.Linear(16, c)), rng)
    return model, X, y


def _losses(fn, model, X, y) -> torch.Tensor:
    what = f"per_example_loss(model, X {tuple(X.shape)}, y ({len(y)},))"
    return expect_tensor(call(fn, model, X, y, name="per_example_loss"), what, shape=(len(y),))


@per_example_loss.prop("returns a float tensor of shape (N,)")
def _loss_shape(fn, rng):
    model, X, y = _loss_instance(rng)
    if not _losses(fn, model, X, y).is_floating_point():
        fail("per_example_loss returned an integer tensor; expected float losses")


@per_example_loss.prop("losses are non-negative")
def _loss_nonneg(fn, rng):
    model, X, y = _loss_instance(rng)
    losses = _losses(fn, model, X, y)
    if (losses < 0).any():
        i = int(losses.argmin())
        fail(f"loss {i} is {fmt(losses[i])}; cross-entropy is -log p(y|x) >= 0 "
             "(log-probabilities have the wrong sign)")


@per_example_loss.prop("entry i is the cross-entropy of example i (so their mean is F.cross_entropy)")
def _loss_values(fn, rng):
    model, X, y = _loss_instance(rng)
    model.eval()
    losses = _losses(fn, model, X, y).double()
    with torch.no_grad():
        expected = F.cross_entropy(model(X), y, reduction="none").double()
    err = (losses - expected).abs()
    if err.max() > 1e-4:
        i = int(err.argmax())
        fail(f"loss {i} is {fmt(losses[i])}; expected {fmt(expected[i])} "
             f"(mean {fmt(losses.mean())} vs F.cross_entropy {fmt(expected.mean())}, on X {tuple(X.shape)})")


@per_example_loss.prop("computes the losses in evaluation mode (dropout off)")
def _loss_eval_mode(fn, rng):
    model, X, y = _loss_instance(rng, dropout=0.5)
    # compare the function with itself, so wrong values elsewhere do not fail this property too
    in_eval = _losses(fn, model.eval(), X, y)
    in_train = _losses(fn, model.train(), X, y)
    if not torch.allclose(in_train, in_eval, atol=1e-5):
        fail("on a model with dropout, given in training mode, the losses differ from the ones it gives in "
             "eval mode: dropout was on; call model.eval() before computing them")


@per_example_loss.prop("leaves the model in its mode and keeps no gradients")
def _loss_side_effects(fn, rng):
    for mode in (True, False):
        model, X, y = _loss_instance(rng)
        model.train(mode)
        losses = call(fn, model, X, y, name="per_example_loss")
        if model.training != mode:
            fail(f"the model was in {'train' if mode else 'eval'} mode and is now in "
                 f"{'train' if model.training else 'eval'} mode; put it back (model.train(was_training))")
        if any(p.grad is not None for p in model.parameters()):
            fail("the model's parameters have .grad set afterwards; compute the losses under torch.no_grad()")
        if isinstance(losses, torch.Tensor) and losses.requires_grad:
            fail("the returned losses require grad; compute them under torch.no_grad()")


# ---- (e) generalization_gap ---------------------------------------------------------------------------
generalization_gap = SET.question("generalization_gap", "generalization_gap(model, train, test) -> float",
                                  forbid=("mlsec_kit.train.accuracy", "mlsec_kit.train.evaluate"))


class _Memorizer(nn.Module):
    """Predicts the stored label of any input it has seen, and a random linear model's guess elsewhere."""

    def __init__(self, X: torch.Tensor, y: torch.Tensor, num_classes: int, rng: torch.Generator,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.register_buffer("X_seen", X.clone())
        self.register_buffer("y_seen", y.clone())
        self.base = linear(rng, X.shape[1], num_classes)
        self.num_classes = num_classes
        # dropout on the input: in training mode kept features are scaled by 1/(1 - p), so no input matches a
        # stored one any more and the memorised accuracy is lost; in evaluation mode it is the identity
        self.drop = nn.Dropout(dropout)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        X = self.drop(X)
        logits = self.base(X)
        same = (X[:, None, :] == self.X_seen[None]).all(-1)
        memo = F.one_hot(self.y_seen[same.float().argmax(1)], self.num_classes).to(logits.dtype) * 100.0
        return torch.where(same.any(1)[:, None], memo, logits)


def _gap_instance(rng: torch.Generator, memorize: str, *, dropout: float = 0.0):
    """Train and test sets and a model that memorises one of them; also both true accuracies (eval mode)."""
    d, c = randint(rng, 2, 5), randint(rng, 2, 4)
    train = blobs(rng, randint(rng, 15, 40), d, c)
    test = blobs(rng, randint(rng, 15, 40), d, c)
    model = _Memorizer(*(train if memorize == "train" else test), c, rng, dropout=dropout)
    model.eval()
    with torch.no_grad():
        accs = [float((model(X).argmax(1) == y).double().mean()) for X, y in (train, test)]
    model.train()
    return model, train, test, accs


def _gap(fn, model, train, test) -> float:
    what = f"generalization_gap(model, train {describe(train)}, test {describe(test)})"
    return to_float(call(fn, model, train, test, name="generalization_gap"), what)


@generalization_gap.prop("returns a Python float")
def _gap_float(fn, rng):
    model, train, test, _ = _gap_instance(rng, "train")
    expect_float(call(fn, model, train, test, name="generalization_gap"), "generalization_gap")


@generalization_gap.prop("a model that memorised its training set has gap 1 - test accuracy")
def _gap_memorize_train(fn, rng):
    for _ in range(3):
        model, train, test, (acc_train, acc_test) = _gap_instance(rng, "train")
        got = _gap(fn, model, train, test)
        if abs(got - (acc_train - acc_test)) > 1e-6:
            fail(f"gap {fmt(got)}; expected {fmt(acc_train - acc_test)} "
                 f"(train accuracy {fmt(acc_train)}, test accuracy {fmt(acc_test)})")


@generalization_gap.prop("is train minus test accuracy, negative when the test set does better")
def _gap_sign(fn, rng):
    for _ in range(3):
        model, train, test, (acc_train, acc_test) = _gap_instance(rng, "test")
        got, expected = _gap(fn, model, train, test), acc_train - acc_test
        if abs(got - expected) > 1e-6:
            hint = "; the sign is flipped: train minus test" if abs(got + expected) <= 1e-6 else ""
            fail(f"gap {fmt(got)} for a model that memorised the test set; expected {fmt(expected)} "
                 f"(train accuracy {fmt(acc_train)}, test accuracy {fmt(acc_test)}){hint}")


@generalization_gap.prop("measures in evaluation mode (dropout off) and leaves the model in its mode")
def _gap_eval_mode(fn, rng):
    model, train, test, _ = _gap_instance(rng, "train", dropout=0.5)
    # compare the function with itself, so a wrong formula elsewhere does not fail this property too
    in_eval = _gap(fn, model.eval(), train, test)
    if model.training:
        fail("the model was in eval mode and is now in train mode; put it back (model.train(was_training))")
    in_train = _gap(fn, model.train(), train, test)
    if not model.training:
        fail("the model was in train mode and is now in eval mode; put it back (model.train(was_training))")
    if abs(in_train - in_eval) > 1e-6:
        fail(f"on a model with dropout, given in training mode, the gap is {fmt(in_train)}; in eval mode it is "
             f"{fmt(in_eval)}: dropout was on while measuring; call model.eval() first")


# ---- (f) membership_chance: a conceptual question, graded on fresh numbers -------------------------------
membership_chance = SET.question("membership_chance", "membership_chance(num_members, num_non_members) -> float")


def _counts(rng: torch.Generator, *, more: str) -> tuple[int, int]:
    """Member and non-member counts, unbalanced towards ``more``."""
    small = randint(rng, 10, 400)
    large = small + randint(rng, 5, 400)
    return (large, small) if more == "members" else (small, large)


def _chance(fn, m: int, n: int) -> float:
    return to_float(call(fn, m, n, name="membership_chance"), f"membership_chance({m}, {n})")


@membership_chance.prop("returns a Python float")
def _mc_float(fn, rng):
    m, n = _counts(rng, more="members")
    expect_float(call(fn, m, n, name="membership_chance"), "membership_chance")


@membership_chance.prop("is the accuracy of always guessing the larger group, whichever it is")
def _mc_majority(fn, rng):
    for more in ("members", "non-members", "members", "non-members"):
        m, n = _counts(rng, more=more)
        got, want = _chance(fn, m, n), max(m, n) / (m + n)
        if abs(got - want) > 1e-9:
            hint = ("; 1/2 is chance only on a balanced set" if abs(got - 0.5) < 1e-9
                    else "; that is the members' share, which is chance only when members are the majority"
                    if abs(got - m / (m + n)) < 1e-9 else "")
            fail(f"membership_chance({m}, {n}) = {fmt(got)}; a guess that ignores the model and always says "
                 f"'{'member' if m > n else 'non-member'}' is right {fmt(want)} of the time{hint}")


@membership_chance.prop("is 1/2 on a balanced set and never below 1/2")
def _mc_balanced(fn, rng):
    k = randint(rng, 10, 500)
    got = _chance(fn, k, k)
    if abs(got - 0.5) > 1e-9:
        fail(f"membership_chance({k}, {k}) = {fmt(got)}; expected 0.5 on a balanced set")
    for more in ("members", "non-members"):
        m, n = _counts(rng, more=more)
        got = _chance(fn, m, n)
        if got < 0.5:
            fail(f"membership_chance({m}, {n}) = {fmt(got)} is below 1/2; guessing the larger group is right at "
                 "least half of the time")
