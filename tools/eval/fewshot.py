"""Few-shot learning of held-out classes: the meta-trained rule against the untuned rule, transfer learning and NCM.

For each meta-training run folder (``python -m tools.metatrain``), draws the
same N-way k-shot episodes of the held-out test classes for every method:

* ``meta-trained rule`` / ``untuned rule``: the run's ``model.esnn`` /
  ``untuned.esnn`` through the RUNTIME: a fresh session per episode,
  ``session.learn(label, example)`` on the support set (raw inputs, shot by
  shot), then the query set in one batched ``session.run``, predicted class =
  argmax of the mean ``"classes"`` score;
* ``imprinting``: the untuned bundle with both step sizes set to 0, through
  the runtime: a class row is its first example's mean presynaptic trace and
  nothing else (no error-triggered update). It shows what the rule's updates
  add; the untuned rule can fall below it, as its unit step overshoots on
  features whose scores are far above ``target_on``;
* ``transfer (SGD)``: a new linear readout (weights and bias, from zero) on the
  feature node's mean spike rates, fine-tuned by full-batch gradient descent on
  the support set's softmax cross-entropy; its learning rate and step count are
  chosen per shot count on the meta-val episodes (never on test classes);
* ``NCM``: nearest class mean (Euclidean) of the same mean spike rates.

Reports mean accuracy and the 95 % interval (1.96 standard errors over
episodes), and for the meta-trained bundle the forgetting check (5 held-out
classes learned one-shot, accuracy on their queries before and after 5 more)
and the cost of ``session.learn`` beyond the forward pass. Writes
``fewshot.json``, ``fewshot.md`` and ``fewshot.png`` into ``--out``.

    python -m tools.eval.fewshot runs/meta_keywords [runs/meta_glyphs] --out results/fewshot [--episodes 600]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgesnn.bundle import read_bundle
from edgesnn.cli import HelpFormatter
from edgesnn.errors import EdgeSNNError, OptionError
from edgesnn.learn.config import learning_config
from edgesnn.model import Model

log = logging.getLogger("edgesnn.tools.eval")

METHODS = ("meta-trained rule", "untuned rule", "imprinting", "transfer (SGD)", "NCM")
TL_LRS = (0.3, 1.0, 3.0, 10.0, 30.0)
TL_STEPS = (10, 30, 100)


def interval(acc: np.ndarray) -> dict[str, float]:
    """Mean and 95 % interval half-width (normal approximation over episodes), in percent."""
    acc = np.asarray(acc, np.float64)
    half = 1.96 * acc.std(ddof=1) / np.sqrt(len(acc)) if len(acc) > 1 else float("nan")
    return {"mean": 100.0 * float(acc.mean()), "ci95": 100.0 * float(half), "episodes": int(len(acc))}


# -- methods -------------------------------------------------------------------------------------


def runtime_rule_accuracy(model: Model, x: np.ndarray, episode: Any) -> tuple[float, int]:
    """Query accuracy of one episode learned by a runtime session, and how many ``session.learn`` calls overshot."""
    session = model.session(batch=len(episode.query))
    overshot = 0
    for idx, row in zip(episode.support, episode.support_rows, strict=True):
        overshot += session.learn(f"class{row}", x[idx])["overshot"]
    queries = np.ascontiguousarray(np.swapaxes(x[episode.query], 0, 1))  # (T, Q, *input shape)
    scores = session.run(queries, outputs=["classes"])["classes"].mean(axis=0)
    labels = np.array([int(c.removeprefix("class")) for c in session.classes()])
    return float(np.mean(labels[scores.argmax(axis=1)] == episode.query_rows)), overshot


def ncm_accuracy(features: np.ndarray, episode: Any, n_way: int) -> float:
    """Nearest-class-mean (Euclidean) query accuracy on per-sample feature vectors (N, F)."""
    sup = features[episode.support]
    means = np.stack([sup[episode.support_rows == c].mean(axis=0) for c in range(n_way)])
    d2 = ((features[episode.query][:, None, :] - means[None]) ** 2).sum(axis=-1)
    return float(np.mean(d2.argmin(axis=1) == episode.query_rows))


def sgd_readout(features: np.ndarray, rows: np.ndarray, n_way: int, lr: float, steps: int) -> tuple:
    """A linear softmax readout (W, b) from zero, fitted by full-batch gradient descent on (features, rows)."""
    w = np.zeros((n_way, features.shape[1]))
    b = np.zeros(n_way)
    onehot = np.eye(n_way)[rows]
    for _ in range(steps):
        logits = features @ w.T + b
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        g = (p - onehot) / len(rows)
        w -= lr * g.T @ features
        b -= lr * g.sum(axis=0)
    return w, b


def transfer_accuracy(features: np.ndarray, episode: Any, n_way: int, lr: float, steps: int) -> float:
    """Query accuracy of the SGD-fine-tuned readout of one episode."""
    w, b = sgd_readout(features[episode.support], episode.support_rows, n_way, lr, steps)
    return float(np.mean((features[episode.query] @ w.T + b).argmax(axis=1) == episode.query_rows))


def imprinting(model: Model) -> Model:
    """``model`` imprinting only: a class row is its first example's scaled mean trace, a dot-product readout.

    Weight imprinting as it is usually meant (and the rule of version 1 with its
    step sizes at 0): no bias, no update, further examples change nothing. The
    rule of version 2 at step 0 would be nearest-class-mean, the ``NCM`` row.
    """
    config = dataclasses.replace(learning_config(model), learning_rate=0.0, learning_rate_other=0.0,
                                 bias="none", shots="first", step="constant")  # fmt: skip
    return dataclasses.replace(model, learning=config.to_dict())


def choose_transfer(features: np.ndarray, episodes: list, n_way: int) -> dict[str, Any]:
    """Learning rate and step count of the SGD baseline with the best mean accuracy on meta-val episodes."""
    table = {(lr, s): float(np.mean([transfer_accuracy(features, e, n_way, lr, s) for e in episodes]))
             for lr in TL_LRS for s in TL_STEPS}  # fmt: skip
    (lr, steps), acc = max(table.items(), key=lambda kv: kv[1])
    return {"lr": lr, "steps": steps, "meta_val_accuracy": acc}


# -- the checks of the runtime learner ---------------------------------------------------------------


def forgetting(
    model: Model, x: np.ndarray, y: np.ndarray, *, repeats: int, n_query: int, seed: int,
    rates: np.ndarray | None = None,
) -> dict | None:  # fmt: skip
    """Accuracy (%) on 5 held-out classes learned one-shot, before and after 5 more (argmax over all learned).

    The loss (before - after) has two parts, measured on the same draws:

    * ``reversed``: accuracy on the same queries when the 5 later classes are
      learned first, and the 5 earlier ones last. ``reversed - after`` is the
      loss due to learning order alone: earlier rows damaged by later learning
      (forgetting proper); ``before - reversed`` is what 5 more competitors in
      the argmax cost, forgetting or not;
    * ``ncm_before`` / ``ncm_after``: nearest class mean on the feature rates
      ``rates`` (N, F) with the same one-shot examples, 5-way and then 10-way: a
      memory that cannot forget, for scale (only when ``rates`` is given).

    None when the test split has fewer than 10 classes.
    """
    rng = np.random.default_rng([seed, 5000])
    labels = np.unique(y)
    if len(labels) < 10:
        log.warning("forgetting check skipped: it needs 10 held-out classes, the test split has %d", len(labels))
        return None
    before, after, reverse, ncm5, ncm10 = [], [], [], [], []
    for _ in range(repeats):
        classes = rng.choice(labels, 10, replace=False)
        picks = [rng.choice(np.flatnonzero(y == c), 1 + n_query, replace=False) for c in classes]
        session = model.session(batch=5 * n_query)
        queries = np.ascontiguousarray(np.swapaxes(x[np.concatenate([p[1:] for p in picks[:5]])], 0, 1))
        truth = np.repeat(np.arange(5), n_query)

        for i in range(5):
            session.learn(f"c{i}", x[picks[i][0]])
        before.append(_score_first_five(session, queries, truth))
        for i in range(5, 10):
            session.learn(f"c{i}", x[picks[i][0]])
        after.append(_score_first_five(session, queries, truth))

        control = model.session(batch=5 * n_query)
        for i in [*range(5, 10), *range(5)]:
            control.learn(f"c{i}", x[picks[i][0]])
        reverse.append(_score_first_five(control, queries, truth))
        if rates is not None:
            means = rates[[p[0] for p in picks]]
            d2 = ((rates[np.concatenate([p[1:] for p in picks[:5]])][:, None] - means[None]) ** 2).sum(axis=-1)
            ncm5.append(float(np.mean(d2[:, :5].argmin(axis=1) == truth)))
            ncm10.append(float(np.mean(d2.argmin(axis=1) == truth)))
    b, a, r = (100.0 * float(np.mean(v)) for v in (before, after, reverse))
    out = {"before": b, "after": a, "loss_points": b - a, "reversed": r, "order_loss_points": r - a,
           "competition_points": b - r, "repeats": repeats, "within_target": b - a <= 2.0}  # fmt: skip
    if rates is not None:
        out["ncm_before"], out["ncm_after"] = 100.0 * float(np.mean(ncm5)), 100.0 * float(np.mean(ncm10))
    return out


def _score_first_five(session: Any, queries: np.ndarray, truth: np.ndarray) -> float:
    session.reset()
    s = session.run(queries, outputs=["classes"])["classes"].mean(axis=0)
    names = np.array([int(c.removeprefix("c")) for c in session.classes()])
    return float(np.mean(names[s.argmax(axis=1)] == truth))


def learn_cost(model: Model, x: np.ndarray, *, repeats: int) -> dict:
    """Median µs of ``session.learn`` of a new class (with a class store), split as the session reports it."""
    with tempfile.TemporaryDirectory() as tmp:
        session = model.session(store=tmp)
        for i in range(10):
            session.learn(f"known{i}", x[i % len(x)])
        rows = []
        for r in range(repeats + 3):
            info = session.learn("new", x[(10 + r) % len(x)])
            session.forget("new")
            if r >= 3:  # the first calls pay for lazy initialisation
                rows.append(info)
    out = {k: statistics.median(r[k] for r in rows) for k in ("forward_us", "rule_us", "store_us", "elapsed_us")}
    out["beyond_forward_us"] = statistics.median(r["rule_us"] + r["store_us"] for r in rows)
    out["within_target"] = out["beyond_forward_us"] <= 5000.0
    out["repeats"] = repeats
    return out


# -- one run folder ------------------------------------------------------------------------------------


def evaluate_run(run_dir: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Every method on the same held-out episodes of one meta-training run."""
    from tools.metatrain import features as F
    from tools.metatrain.config import load_config
    from tools.metatrain.episodes import fixed_episodes
    from tools.metatrain.run import BUNDLE, CONFIG, UNTUNED, feature_bundle_path

    cfg = load_config(run_dir / CONFIG)
    if args.data:
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, path=args.data))
    raw = F.load_raw(cfg.data, cfg.seed)
    feats = F.cached_features(feature_bundle_path(cfg, run_dir), cfg.features.feature_node, raw, run_dir)
    models = {"meta-trained rule": read_bundle(run_dir / BUNDLE), "untuned rule": read_bundle(run_dir / UNTUNED)}
    models["imprinting"] = imprinting(models["untuned rule"])
    tuned_graph = models["meta-trained rule"].graph
    # Examples go to session.learn in the input's own shape (glyph frames are loaded flattened).
    shape = tuple(tuned_graph.nodes[tuned_graph.inputs[0]].shape)
    test_x = raw["test"].x.reshape(*raw["test"].x.shape[:2], *shape)
    test_rates, val_rates = feats["test"].mean_rates(), feats["meta_val"].mean_rates()
    n_way, n_query = cfg.episodes.n_way, args.n_query
    out: dict[str, Any] = {"run": str(run_dir), "name": cfg.name, "data": cfg.data.kind, "n_way": n_way,
                           "n_query": n_query, "test_classes": list(raw["test"].classes), "results": {},
                           "transfer": {}, "learning": models["meta-trained rule"].learning}  # fmt: skip
    for k in args.shots:
        episodes = fixed_episodes(raw["test"].y, args.episodes, n_way=n_way, k_shot=k, n_query=n_query,
                                  seed=[cfg.seed, 1000, k])  # fmt: skip
        val_eps = fixed_episodes(feats["meta_val"].y, 200, n_way=n_way, k_shot=k, n_query=n_query,
                                 seed=[cfg.seed, 2000, k])  # fmt: skip
        tl = choose_transfer(val_rates, val_eps, n_way)
        out["transfer"][str(k)] = tl
        acc: dict[str, list[float]] = {m: [] for m in METHODS}
        overshot = dict.fromkeys(models, 0)
        t0 = time.perf_counter()
        for i, e in enumerate(episodes):
            for name, model in models.items():
                a, n = runtime_rule_accuracy(model, test_x, e)
                acc[name].append(a)
                overshot[name] += n
            acc["transfer (SGD)"].append(transfer_accuracy(test_rates, e, n_way, tl["lr"], tl["steps"]))
            acc["NCM"].append(ncm_accuracy(test_rates, e, n_way))
            if not args.quiet and (i + 1) % 100 == 0:
                print(f"{cfg.name} {k}-shot: {i + 1}/{len(episodes)} episodes, {time.perf_counter() - t0:.0f} s",
                      file=sys.stderr)  # fmt: skip
        out["results"][str(k)] = {m: interval(np.array(v)) for m, v in acc.items()}
        # Share of support examples whose update carried the taught score past its target (see LearnUpdate).
        n_support = len(episodes) * len(episodes[0].support)
        out.setdefault("overshot_percent", {})[str(k)] = {m: 100.0 * n / n_support for m, n in overshot.items()}
    tuned = models["meta-trained rule"]
    out["forgetting"] = forgetting(tuned, test_x, raw["test"].y, repeats=args.forget_repeats, n_query=n_query,
                                   seed=cfg.seed, rates=test_rates)  # fmt: skip
    # The same draws for the rule's defaults: the order part must hold for every learner.
    out["forgetting_untuned"] = forgetting(models["untuned rule"], test_x, raw["test"].y,
                                           repeats=args.forget_repeats, n_query=n_query, seed=cfg.seed)  # fmt: skip
    out["learn_cost_us"] = learn_cost(tuned, test_x, repeats=51)
    return out


# -- reports ------------------------------------------------------------------------------------------------


def markdown(results: dict[str, Any]) -> str:
    """The results as Markdown: one accuracy table per run, then the checks of the runtime learner."""
    lines = ["# Few-shot learning of held-out classes", ""]
    for run in results["runs"]:
        shots = list(run["results"])
        lines += [f"## {run['name']} ({run['data']}, {run['n_way']}-way, {run['n_query']} queries per class)", "",
                  f"Held-out classes: {', '.join(run['test_classes'][:12])}"
                  f"{' ...' if len(run['test_classes']) > 12 else ''} ({len(run['test_classes'])}).", "",
                  "| method | " + " | ".join(f"{k}-shot accuracy (%)" for k in shots) + " |",
                  "|---" * (len(shots) + 1) + "|"]  # fmt: skip
        for m in METHODS:
            cells = [f"{run['results'][k][m]['mean']:.1f} ± {run['results'][k][m]['ci95']:.1f}" for k in shots]
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
        r1 = run["results"][shots[0]]
        lines += ["", f"Episodes per cell: {r1['NCM']['episodes']}; ± is the 95 % interval. "
                  f"{shots[0]}-shot margins of the meta-trained rule: "
                  f"{r1['meta-trained rule']['mean'] - r1['transfer (SGD)']['mean']:+.1f} points over transfer "
                  f"(target >= +15), {r1['meta-trained rule']['mean'] - r1['untuned rule']['mean']:+.1f} over the "
                  f"untuned rule (target >= +10), {r1['meta-trained rule']['mean'] - r1['imprinting']['mean']:+.1f} "
                  "over imprinting.", ""]  # fmt: skip
        if "overshot_percent" in run:
            o = run["overshot_percent"][shots[0]]
            lines += ["Support examples whose update carried the taught score past its target (overshoot, "
                      f"{shots[0]}-shot): " + ", ".join(f"{m} {o[m]:.0f} %" for m in o) + ".", ""]  # fmt: skip
        tl = "; ".join(f"{k}-shot lr {v['lr']:g}, {v['steps']} steps" for k, v in run["transfer"].items())
        f, c = run["forgetting"], run["learn_cost_us"]
        lines += [f"Transfer baseline chosen on meta-val episodes: {tl}.", ""]
        if f is not None:
            lines += [f"Forgetting (meta-trained bundle, 5 held-out classes one-shot, then 5 more, {f['repeats']} "
                      f"repeats): {f['before']:.1f} % -> {f['after']:.1f} % ({f['loss_points']:+.1f} points lost; "
                      f"target <= 2)."]  # fmt: skip
            if "reversed" in f:
                lines += [f"Of that, learning order: {f['order_loss_points']:+.1f} points (the first 5 learned last "
                          f"instead: {f['reversed']:.1f} %); 5 more classes in the argmax: "
                          f"{f['competition_points']:+.1f} points."]  # fmt: skip
            if "ncm_before" in f:
                lines += [f"NCM on the same one-shot examples (cannot forget): {f['ncm_before']:.1f} % -> "
                          f"{f['ncm_after']:.1f} % ({f['ncm_before'] - f['ncm_after']:+.1f} points)."]  # fmt: skip
            u = run.get("forgetting_untuned")
            if u is not None:
                lines += [f"Untuned rule, same draws: {u['before']:.1f} % -> {u['after']:.1f} %; learning order "
                          f"{u['order_loss_points']:+.1f} points (target <= 2)."]  # fmt: skip
            lines.append("")
        lines += [f"Cost of learning one class (median of {c['repeats']}, with a store): forward "
                  f"{c['forward_us'] / 1e3:.2f} ms, rule {c['rule_us'] / 1e3:.2f} ms, store "
                  f"{c['store_us'] / 1e3:.2f} ms; beyond the forward pass {c['beyond_forward_us'] / 1e3:.2f} ms "
                  "(target <= 5 ms).", ""]  # fmt: skip
    return "\n".join(lines)


def plot(results: dict[str, Any], path: Path) -> None:
    """Accuracy with 95 % intervals: one panel per run, one group of bars per shot count."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = results["runs"]
    fig, axes = plt.subplots(1, len(runs), figsize=(5.0 * len(runs), 3.8), squeeze=False, sharey=True)
    width = 0.8 / len(METHODS)
    for ax, run in zip(axes[0], runs, strict=True):
        shots = list(run["results"])
        for j, m in enumerate(METHODS):
            means = [run["results"][k][m]["mean"] for k in shots]
            errs = [run["results"][k][m]["ci95"] for k in shots]
            ax.bar(np.arange(len(shots)) + (j - (len(METHODS) - 1) / 2) * width, means, width, yerr=errs,
                   capsize=2, label=m)  # fmt: skip
        ax.axhline(100.0 / run["n_way"], color="grey", lw=0.8, ls=":")
        ax.set_xticks(np.arange(len(shots)), [f"{run['n_way']}-way {k}-shot" for k in shots])
        ax.set_title(run["name"])
    axes[0][0].set_ylabel("held-out accuracy (%)")
    axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    ap = argparse.ArgumentParser(
        formatter_class=HelpFormatter, prog="python -m tools.eval.fewshot", description=__doc__.split("\n")[0]
    )
    ap.add_argument("runs", nargs="+", help="meta-training output folders (python -m tools.metatrain)")
    ap.add_argument("--out", required=True, help="output folder for fewshot.json, .md and .png")
    ap.add_argument("--episodes", type=int, default=600)
    ap.add_argument("--shots", type=int, nargs="+", default=[1, 5])
    ap.add_argument("--n-query", type=int, default=5, help="queries per class and episode")
    ap.add_argument("--forget-repeats", type=int, default=50)
    ap.add_argument("--data", help="dataset folder overriding the one in each run's config")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    # The learner warns on every overshooting update; here they are counted and reported instead.
    logging.getLogger("edgesnn.learn").setLevel(logging.ERROR)
    try:
        if args.episodes < 2 or min(args.shots) < 1 or args.n_query < 1:
            raise OptionError("expected --episodes >= 2, --shots >= 1 and --n-query >= 1", path="arguments")
        t0 = time.perf_counter()
        results: dict[str, Any] = {"runs": [evaluate_run(Path(r), args) for r in args.runs]}
        results["wall_s"] = time.perf_counter() - t0
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "fewshot.json").write_text(json.dumps(results, indent=2))
        (out / "fewshot.md").write_text(markdown(results))
        plot(results, out / "fewshot.png")
        print(markdown(results))
    except EdgeSNNError as exc:
        print(f"fewshot: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["evaluate_run", "forgetting", "learn_cost", "main", "markdown", "ncm_accuracy", "plot",
           "imprinting", "runtime_rule_accuracy", "sgd_readout", "transfer_accuracy"]  # fmt: skip
