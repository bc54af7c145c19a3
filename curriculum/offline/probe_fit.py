"""Linear probes and their intervals for `lara probe` (pure numpy, no model).

Why linear and small: a probe measures what a representation makes *readable*, not what a large
decoder could recover from it; a multi-layer probe would learn the task itself from the features of
any model, random ones included. Features are standardized with the probe-train frames' mean and
standard deviation (the hidden states of different models live on different scales).

- `fit_logistic` / `predict_logistic`: multinomial logistic regression with an L2 penalty, full-batch
  accelerated gradient descent in float64 numpy (deterministic for a given input).
- `fit_ridge` / `predict_ridge`: closed-form ridge regression (box center and size).
- `box_iou`: IoU of (cx, cy, w, h) boxes in [0, 1] image units.
- `bootstrap_mean`: a cluster bootstrap over episodes (frames of one episode are not independent).
- Accuracy intervals are Wilson intervals (`envs.report.wilson_interval`, the one the closed-loop
  reports use); they treat frames as independent, which overstates the precision when frames of one
  episode are alike (the report says so).
"""

from __future__ import annotations

import numpy as np


def standardize(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """(N, D) arrays scaled by the train rows' per-dim mean / std (constant dims stay 0)."""
    mean = train.mean(0, keepdims=True)  # (1, D)
    std = train.std(0, keepdims=True)
    std = np.where(std > 1e-8, std, 1.0)
    return [(x - mean) / std for x in (train, *others)]


def fit_logistic(x: np.ndarray, y: np.ndarray, num_classes: int, l2: float = 1e-2, steps: int = 300):
    """Weights (D + 1, C) of a multinomial logistic regression on x (N, D), integer labels y (N,).

    Minimizes the mean cross-entropy plus l2 * |W|^2 / 2 (bias not penalized) by Nesterov-accelerated
    gradient descent with the step 1 / L, L the gradient's Lipschitz bound (|x_b|_2^2 / (2 N) + l2):
    the problem is convex and smooth, so a fixed number of numpy steps converges without line searches
    (an autograd L-BFGS cost seconds per probe on a loaded 2-core machine; this costs milliseconds)."""
    xb = np.concatenate([x, np.ones((len(x), 1))], 1).astype(np.float64)  # (N, D + 1): last column = bias
    onehot = np.eye(num_classes)[y]  # (N, C)
    lip = _top_singular_value(xb) ** 2 / (2 * len(xb)) + l2
    penalty = np.ones((xb.shape[1], 1))
    penalty[-1] = 0.0
    w = np.zeros((xb.shape[1], num_classes))
    v, t = w.copy(), 1.0
    for _ in range(steps):
        z = xb @ v  # (N, C)
        z -= z.max(1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(1, keepdims=True)
        grad = xb.T @ (p - onehot) / len(xb) + l2 * penalty * v  # (D + 1, C)
        w_next = v - grad / lip
        t_next = (1 + np.sqrt(1 + 4 * t * t)) / 2
        v = w_next + (t - 1) / t_next * (w_next - w)
        w, t = w_next, t_next
    return w


def _top_singular_value(x: np.ndarray, iters: int = 50) -> float:
    """Largest singular value of x (N, D) by power iteration, 1.2x over (a step below 1 / L diverges;
    an exact `np.linalg.norm(x, 2)` is a full SVD: minutes at 8k frames x 8k dims)."""
    v = np.random.default_rng(0).normal(size=x.shape[1])
    for _ in range(iters):
        v = x.T @ (x @ v)
        v /= max(np.linalg.norm(v), 1e-12)
    return 1.2 * float(np.linalg.norm(x @ v))


def predict_logistic(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Class indices (N,) of x (N, D) under weights (D + 1, C)."""
    return (x @ w[:-1] + w[-1]).argmax(1)


def fit_ridge(x: np.ndarray, y: np.ndarray, l2: float = 1.0) -> np.ndarray:
    """Weights (D + 1, K) of ridge regression x (N, D) -> y (N, K); the bias is not penalized."""
    xb = np.concatenate([x, np.ones((len(x), 1))], 1)  # (N, D + 1)
    reg = l2 * np.eye(xb.shape[1])
    reg[-1, -1] = 0.0
    return np.linalg.solve(xb.T @ xb + reg, xb.T @ y)


def predict_ridge(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    return x @ w[:-1] + w[-1]


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU (N,) of boxes a, b (N, 4) given as (cx, cy, w, h); negative sizes count as 0."""
    aw, ah = np.maximum(a[:, 2], 0), np.maximum(a[:, 3], 0)
    bw, bh = np.maximum(b[:, 2], 0), np.maximum(b[:, 3], 0)
    ix = np.clip(
        np.minimum(a[:, 0] + aw / 2, b[:, 0] + bw / 2) - np.maximum(a[:, 0] - aw / 2, b[:, 0] - bw / 2),
        0,
        None,
    )
    iy = np.clip(
        np.minimum(a[:, 1] + ah / 2, b[:, 1] + bh / 2) - np.maximum(a[:, 1] - ah / 2, b[:, 1] - bh / 2),
        0,
        None,
    )
    inter = ix * iy
    union = aw * ah + bw * bh - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def bootstrap_mean(
    values: np.ndarray, groups: np.ndarray, reps: int = 1000, seed: int = 0
) -> tuple[float, float, float]:
    """(mean, low, high): the mean of `values` (N,) and a 95% percentile interval from resampling
    the groups (episodes, (N,)) with replacement; (mean, mean, mean) with a single group."""
    mean = float(values.mean()) if len(values) else float("nan")
    ids = np.unique(groups)
    if len(ids) < 2 or reps < 1:
        return mean, mean, mean
    per = [values[groups == g] for g in ids]
    rng = np.random.default_rng(seed)
    draws = np.empty(reps)
    for r in range(reps):
        pick = rng.integers(0, len(per), len(per))
        draws[r] = np.concatenate([per[i] for i in pick]).mean()
    low, high = np.percentile(draws, [2.5, 97.5])
    return mean, float(low), float(high)


def accuracy_with_interval(correct: np.ndarray) -> dict:
    """{accuracy, low, high, n} with a 95% Wilson interval for a boolean array (N,)."""
    from envs.report import wilson_interval

    n, k = int(len(correct)), int(np.sum(correct))
    low, high = wilson_interval(k, n)
    return {"accuracy": k / n if n else float("nan"), "low": low, "high": high, "n": n}


def classify(
    x_train: np.ndarray,
    y_train: list[str],
    x_test: np.ndarray,
    y_test: list[str],
    l2: float,
    steps: int,
    shuffle_seed: int | None = None,
) -> dict:
    """Fit a logistic probe on (x_train, y_train) and score it on the test frames.

    Classes are the train labels; a test frame whose label never occurs in training counts as wrong
    (`unseen` says how many). `shuffle_seed` permutes the train labels first (the shuffled-label
    control: what a probe of this size learns from these features when the labels carry nothing)."""
    classes = sorted(set(y_train))
    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index[c] for c in y_train])  # (N_train,)
    if shuffle_seed is not None:
        y = np.random.default_rng(shuffle_seed).permutation(y)
    truth = np.array([index.get(c, -1) for c in y_test])  # (N_test,)
    if len(classes) == 1:
        pred = np.zeros(len(y_test), dtype=int)
    else:
        xtr, xte = standardize(x_train, x_test)
        pred = predict_logistic(fit_logistic(xtr, y, len(classes), l2, steps), xte)
    out = accuracy_with_interval(pred == truth)
    out["unseen"] = int((truth < 0).sum())
    out["classes"] = len(classes)
    return out


def majority(y_train: list[str], y_test: list[str]) -> dict:
    """Accuracy of always answering the most frequent train label (the floor a probe must beat)."""
    values, counts = np.unique(np.array(y_train), return_counts=True)
    top = values[counts.argmax()]
    return accuracy_with_interval(np.array([y == top for y in y_test], dtype=bool))


def regress_boxes(
    x_train: np.ndarray,
    b_train: np.ndarray,
    x_test: np.ndarray,
    b_test: np.ndarray,
    groups: np.ndarray,
    l2: float,
    reps: int,
    seed: int,
    shuffle_seed: int | None = None,
) -> dict:
    """Ridge probe to (cx, cy, w, h) (N, 4); mean IoU on the test frames with an episode bootstrap."""
    if shuffle_seed is not None:
        b_train = b_train[np.random.default_rng(shuffle_seed).permutation(len(b_train))]
    xtr, xte = standardize(x_train, x_test)
    # l2 on standardized features scales with the number of frames (the data term is a sum)
    pred = predict_ridge(fit_ridge(xtr, b_train, l2 * len(xtr)), xte)
    iou = box_iou(pred, b_test)
    mean, low, high = bootstrap_mean(iou, groups, reps, seed)
    return {"iou": mean, "low": low, "high": high, "n": int(len(iou))}


def mean_box(b_train: np.ndarray, b_test: np.ndarray, groups: np.ndarray, reps: int, seed: int) -> dict:
    """IoU of always answering the train frames' mean box (the floor of the box probe)."""
    iou = box_iou(np.broadcast_to(b_train.mean(0), b_test.shape), b_test)
    mean, low, high = bootstrap_mean(iou, groups, reps, seed)
    return {"iou": mean, "low": low, "high": high, "n": int(len(iou))}
