"""Supervised disentanglement metrics of latent codes against known categorical factors.

Every function here is pure: codes (N, C) of N items (time-averaged per item, as the probes read
them), factors (N, F) int class ids of the same items. The metrics and their sources:

- MIG, mutual information gap (Chen et al. 2018, "Isolating sources of disentanglement in VAEs",
  eq. 7): per factor, the gap between the two code dimensions sharing the most information with it,
  over the factor's entropy; averaged over factors. 1: each factor lives in one dimension only.
- DCI (Eastwood & Williams 2018, "A framework for the quantitative evaluation of disentangled
  representations", §3): from a (C × F) importance matrix R of a classifier per factor,
  disentanglement (does each dimension serve one factor), completeness (is each factor served by
  one dimension) and informativeness (how well the codes predict the factors).
- SAP, separated attribute predictability (Kumar et al. 2018, "Variational inference of disentangled
  latent concepts from unlabeled observations", §3): per factor, the gap between the two dimensions
  that alone predict it best; averaged over factors.
- Modularity (Ridgeway & Mozer 2018, "Learning deep disentangled embeddings with the F-statistic
  loss", §3): does each dimension share information with one factor only.
- Active units (Burda et al. 2016, "Importance weighted autoencoders", §5.2): dimensions u with
  Cov_x(E_{q(z|x)}[z_u]) > 0.01; with the per-dimension KL of SIM's posterior to N(0, 1) they show
  partial posterior collapse directly.

Where the metrics' scores are not scale-invariant by definition they are made so here (quantile bins,
forests, nearest-mean thresholds), because SIM samples and GIM means differ in scale by orders of
magnitude and a metric must not rank them by their units.
"""

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import scipy.stats  # noqa: E402

from sim_jax import io  # noqa: E402

# 20 bins: the number disentanglement_lib's MIG uses, so figures compare with the literature's; the
# plug-in MI's bias, (B − 1)(K − 1) / 2N nats, is then below 1 % of a 3-class factor's entropy for
# N ≥ 2000 items (de Boer's 2,541 syllables).
DEFAULT_BINS = 20
DEFAULT_TREES = 30
ACTIVE_UNIT_THRESHOLD = 0.01  # Burda et al. 2016's: Cov_x E[z_u] above it
COLLAPSED_KL = 0.01  # nats per frame: a dimension whose posterior is the prior to within this


def select_factors(labels: dict, class_names: dict, wanted=()) -> tuple[list[str], dict]:
  """The factors among a source's item labels: (names, {left-out label: why}).

  `labels` {name: (N,) int}, `class_names` {name: [classes]}: a label is a factor candidate when it
  has class names (`Source.labels` with `Source.class_names`). `wanted` names them explicitly (a name
  that is no candidate raises ValueError); empty: every candidate except (a) a label with one class
  among the items (no entropy) and (b) a label that is the product of two or more others — every
  other label that is a function of it jointly determines it (de Boer's syllable = consonant ×
  vowel): counted as a factor of its own it would make a perfectly factorised code look entangled —
  and (c) a label some items lack (a negative value, e.g. a folder corpus's empty cell): the metrics
  need every factor of every item. Asked for explicitly, such a label is used on the items that have
  it (`labelled_rows`).
  """
  candidates = [k for k in labels if k in class_names]
  if wanted:
    unknown = [k for k in wanted if k not in candidates]
    if unknown:
      raise ValueError(f'config.analysis.disentanglement_factors: {", ".join(unknown)} not among the '
                       f'item labels ({", ".join(candidates) or "none"})')
    return list(wanted), {k: 'not asked for' for k in candidates if k not in wanted}
  left_out = {k: f'no value for {int(np.sum(labels[k] < 0))} of {len(labels[k])} items (name it in '
                 'config.analysis.disentanglement_factors to use the items that have it)'
              for k in candidates if np.any(labels[k] < 0)}
  left_out.update({k: 'one class among the items' for k in candidates
                   if k not in left_out and len(np.unique(labels[k])) < 2})
  varied = [k for k in candidates if k not in left_out]
  for name in varied:
    parts = [k for k in varied if k != name and _is_function_of(labels[k], labels[name])]
    if len(parts) >= 2 and _is_function_of(labels[name], *(labels[k] for k in parts)):
      left_out[name] = 'the product of ' + ' × '.join(parts)
  return [k for k in varied if k not in left_out], left_out


def labelled_rows(labels: dict, names) -> np.ndarray:
  """(N,) bool: the items that have a value (>= 0) for every label in `names`."""
  return np.all([labels[k] >= 0 for k in names], axis=0)


def _is_function_of(y: np.ndarray, *xs: np.ndarray) -> bool:
  """Whether every combination of the values of `xs` that occurs comes with one value of `y`."""
  keys = np.stack(xs, axis=1)  # (N, len(xs))
  pairs = np.unique(np.column_stack([keys, y]), axis=0)
  return len(pairs) == len(np.unique(keys, axis=0))


def discretize(codes: np.ndarray, bins: int = DEFAULT_BINS) -> np.ndarray:
  """Each column of `codes` (N, C) cut into `bins` equal-count bins by rank: (N, C) int in [0, bins).

  Quantile bins, not disentanglement_lib's equal-width ones: the bins (so MIG and the MI matrix) do
  not change under a monotone rescaling of a dimension, and one outlier cannot push every other item
  into one bin. Tied values share a bin, so a code with k distinct values gets at most k bins.
  """
  codes = np.asarray(codes, np.float64)
  ranks = scipy.stats.rankdata(codes, method='min', axis=0) - 1  # (N, C) in [0, N)
  return np.minimum((ranks * bins) // len(codes), bins - 1).astype(np.int64)


def entropy(y: np.ndarray) -> float:
  """Plug-in entropy of class ids `y` (N,), in nats."""
  p = np.bincount(y) / len(y)
  p = p[p > 0]
  return float(-(p * np.log(p)).sum())


def mutual_information(binned: np.ndarray, factors: np.ndarray) -> np.ndarray:
  """Plug-in mutual information (nats) of every discretised code column `binned` (N, C) with every
  factor column `factors` (N, F): (C, F)."""
  n, c = binned.shape
  bins = int(binned.max()) + 1
  out = np.zeros((c, factors.shape[1]))
  for f, y in enumerate(factors.T):
    k = int(y.max()) + 1
    cell = binned * k + y[:, None] + np.arange(c)[None, :] * (bins * k)  # (N, C) a joint cell per column
    joint = np.bincount(cell.ravel(), minlength=c * bins * k).reshape(c, bins, k) / n  # (C, B, K)
    outer = joint.sum(2, keepdims=True) * joint.sum(1, keepdims=True)  # p(z) p(y), (C, B, K)
    ratio = np.where(joint > 0, joint / np.where(outer > 0, outer, 1.0), 1.0)
    out[:, f] = (joint * np.log(ratio)).sum((1, 2))
  return out


def mig(mi: np.ndarray, factor_entropy: np.ndarray) -> dict:
  """Mutual information gap (Chen et al. 2018, eq. 7) from the MI matrix (C, F) and each factor's
  entropy H(v_k) (F,): {'mig': mean over factors of (I(z_a; v_k) − I(z_b; v_k)) / H(v_k), a and b the
  dimensions with the largest and second-largest MI with v_k; 'per_factor' (F,); 'top_dims' (F,)}.
  Needs C ≥ 2."""
  order = np.argsort(-mi, axis=0, kind='stable')  # (C, F)
  top = np.take_along_axis(mi, order[:2], axis=0)  # (2, F)
  gap = (top[0] - top[1]) / factor_entropy
  return {'mig': float(gap.mean()), 'per_factor': gap, 'top_dims': order[0]}


def modularity(mi: np.ndarray) -> dict:
  """Modularity (Ridgeway & Mozer 2018, §3) of the MI matrix (C, F): per dimension i, with θ_i its
  largest MI and t_i the template holding θ_i at that factor and 0 elsewhere,
  1 − Σ_f (m_if − t_if)² / (θ_i² (F − 1)); averaged over dimensions, a dimension sharing no
  information with any factor scoring 0 (as disentanglement_lib). None for a single factor.
  Returns {'modularity', 'per_dim' (C,)}."""
  if mi.shape[1] < 2:
    return {'modularity': None, 'per_dim': None}
  sq = np.square(mi)
  top = sq.max(axis=1)  # θ_i²
  deviation = (sq.sum(axis=1) - top) / np.where(top > 0, top * (mi.shape[1] - 1), 1.0)
  per_dim = np.where(top > 0, 1.0 - deviation, 0.0)
  return {'modularity': float(per_dim.mean()), 'per_dim': per_dim}


def importance_matrix(train_codes: np.ndarray, train_factors: np.ndarray, test_codes: np.ndarray,
                      test_factors: np.ndarray, seed: int, trees: int = DEFAULT_TREES) -> tuple:
  """DCI's importance matrix R (C, F) and each factor's test accuracy (F,), from one tree ensemble
  classifier per factor: scikit-learn's extremely randomised trees (`trees` of them, seed `seed`),
  every dimension a candidate at every split, leaves of at least `min_leaf(factor)` training items.

  Trees (Eastwood & Williams' random forest, here as the classifier the categorical factors ask
  for), not their lasso or disentanglement_lib's gradient-boosted trees: the impurity importances do
  not depend on a dimension's scale (a lasso's coefficients do, and SIM's and GIM's codes differ in
  scale by orders of magnitude, while its sparsity hangs on a penalty that would need tuning per
  model), they find non-monotone relations a linear model misses, they sum to 1 per factor, and
  they cost seconds at 512 dimensions where boosting, one tree per class and stage, costs minutes per
  factor (hours for LibriSpeech's 251 speakers). Every dimension is a split candidate (not √C): with
  √C candidates most splits see no informative dimension and split on whatever is offered, which
  spreads importance over dimensions that carry nothing. The leaf floor stops the trees before they
  fit noise for the same reason.
  """
  from sklearn.ensemble import ExtraTreesClassifier  # slow to import, used here only
  r = np.zeros((train_codes.shape[1], train_factors.shape[1]))
  accuracy = np.zeros(train_factors.shape[1])
  for f in range(train_factors.shape[1]):
    y = train_factors[:, f]
    forest = ExtraTreesClassifier(n_estimators=trees, max_features=None, min_samples_leaf=min_leaf(y),
                                  random_state=seed, n_jobs=1)
    forest.fit(train_codes, y)
    r[:, f] = forest.feature_importances_
    accuracy[f] = np.mean(forest.predict(test_codes) == test_factors[:, f])
  return r, accuracy


def min_leaf(y: np.ndarray) -> int:
  """The trees' smallest leaf for training labels `y` (N,): 1 % of the items, but at most a quarter
  of the rarest class (so a factor with many small classes, LibriSpeech's speakers, can still be
  told apart), and at least 1."""
  counts = np.bincount(y)
  return max(1, min(len(y) // 100, int(counts[counts > 0].min()) // 4))


def _one_minus_entropy(p: np.ndarray, base: int) -> np.ndarray:
  """1 − H_base(p) of each row of the distributions `p` (n, m) (rows sum to 1)."""
  logs = np.log(np.where(p > 0, p, 1.0))
  return 1.0 + (p * logs).sum(axis=1) / np.log(base)


def dci(importance: np.ndarray) -> dict:
  """Disentanglement and completeness (Eastwood & Williams 2018, §3) of an importance matrix R (C, F):

  D_i = 1 − H_F(P_i·) with P_i· = R_i· / Σ_f R_if, and D = Σ_i ρ_i D_i, ρ_i = Σ_f R_if / Σ R (dimensions
  without importance weigh 0); C_f = 1 − H_C(R_·f / Σ_i R_if), and C their mean over factors (for
  importances normalised per factor, as a forest's, E&W's weighting by factor importance is this
  mean). D needs two factors (None for one). Returns {'disentanglement', 'completeness',
  'per_dim' (C,), 'per_factor' (F,)}.
  """
  c, f = importance.shape
  totals = importance.sum(axis=1)  # (C,)
  used = totals > 0
  per_dim = np.zeros(c)
  disentanglement = None
  if f >= 2 and used.any():
    per_dim[used] = _one_minus_entropy(importance[used] / totals[used, None], f)
    disentanglement = float((per_dim * totals).sum() / totals.sum())
  factor_totals = importance.sum(axis=0)  # (F,)
  per_factor = np.where(factor_totals > 0, _one_minus_entropy(
      (importance / np.where(factor_totals > 0, factor_totals, 1.0)).T, c), 0.0)  # no importance: 0
  return {'disentanglement': disentanglement, 'completeness': float(per_factor.mean()),
          'per_dim': per_dim if f >= 2 else None, 'per_factor': per_factor}


def sap_scores(train_codes: np.ndarray, train_factors: np.ndarray, test_codes: np.ndarray,
               test_factors: np.ndarray, chunk: int = 64) -> np.ndarray:
  """SAP's score matrix (C, F): how well each dimension alone predicts each factor on the test items.

  The classifier of dimension i for factor f assigns a test item the class whose training mean along
  i is nearest (thresholds half-way between the class means: a 1-D linear classifier, as
  disentanglement_lib's 1-D linear SVM, without its regularisation constant or its dependence on the
  dimension's scale). Kumar et al. score a categorical factor by accuracy; here by balanced accuracy
  rescaled so chance (1/K for the K classes among the test items) is 0 and perfect 1, clipped at 0,
  so factors with different class counts and balances compare and the ideal SAP is 1.
  """
  c = train_codes.shape[1]
  scores = np.zeros((c, train_factors.shape[1]))
  for f in range(train_factors.shape[1]):
    y, y_test = train_factors[:, f], test_factors[:, f]
    k = int(max(y.max(), y_test.max())) + 1
    counts = np.bincount(y, minlength=k)  # (K,)
    means = (np.eye(k)[y].T @ train_codes) / np.maximum(counts, 1)[:, None]  # (K, C)
    means[counts == 0] = np.inf  # a class never seen in training is never predicted
    present = np.unique(y_test)
    if len(present) < 2:  # no test classes to tell apart: nothing to predict
      continue
    for start in range(0, c, chunk):
      dims = slice(start, start + chunk)
      distance = np.abs(test_codes[:, dims, None] - means[:, dims].T[None])  # (N_test, c, K)
      predicted = np.argmin(distance, axis=2)  # (N_test, c)
      recall = np.stack([np.mean(predicted[y_test == cls] == cls, axis=0) for cls in present])  # (K', c)
      chance = 1.0 / len(present)
      scores[dims, f] = np.maximum((recall.mean(axis=0) - chance) / (1.0 - chance), 0.0)
  return scores


def sap(scores: np.ndarray) -> dict:
  """SAP (Kumar et al. 2018, §3) of a score matrix (C, F): the mean over factors of the gap between
  the best and second-best dimension's score. Returns {'sap', 'per_factor' (F,), 'top_dims' (F,)}."""
  order = np.argsort(-scores, axis=0, kind='stable')
  top = np.take_along_axis(scores, order[:2], axis=0)  # (2, F)
  gap = top[0] - top[1]
  return {'sap': float(gap.mean()), 'per_factor': gap, 'top_dims': order[0]}


def active_units(means: np.ndarray, threshold: float = ACTIVE_UNIT_THRESHOLD) -> dict:
  """Active units (Burda et al. 2016, §5.2) of posterior means (N, C), one row per item:
  {'active_units': #{u : Var_x E[z_u | x] > threshold}, 'variance' (C,)}."""
  variance = np.asarray(means, np.float64).var(axis=0)
  return {'active_units': int((variance > threshold).sum()), 'variance': variance}


def scores(train_codes: np.ndarray, train_factors: np.ndarray, test_codes: np.ndarray,
           test_factors: np.ndarray, seeds: list[int], bins: int = DEFAULT_BINS,
           trees: int = DEFAULT_TREES) -> dict:
  """Every metric of codes against factors (train: classifiers fitted; test: classifiers scored; the
  MI-based metrics on both together). DCI is fitted once per seed in `seeds` (its per-seed values
  under 'seeds', mean and std beside them). Needs C ≥ 2 and F ≥ 1."""
  codes = np.concatenate([train_codes, test_codes]).astype(np.float64)  # (N, C)
  factors = np.concatenate([train_factors, test_factors])  # (N, F)
  factor_entropy = np.array([entropy(y) for y in factors.T])
  mi = mutual_information(discretize(codes, bins), factors)
  gap = mig(mi, factor_entropy)
  runs = [importance_matrix(train_codes, train_factors, test_codes, test_factors, s, trees) for s in seeds]
  per_seed = [dci(r) | {'informativeness': float(acc.mean())} for r, acc in runs]
  sap_matrix = sap_scores(train_codes, train_factors, test_codes, test_factors)
  separated = sap(sap_matrix)
  out = {'mig': gap['mig'], 'sap': separated['sap'], 'modularity': modularity(mi)['modularity'],
         'mi': mi, 'normalized_mi': mi / factor_entropy, 'factor_entropy': factor_entropy,
         'mig_per_factor': gap['per_factor'], 'mig_top_dims': gap['top_dims'],
         'sap_matrix': sap_matrix, 'sap_per_factor': separated['per_factor'], 'sap_top_dims': separated['top_dims'],
         'importance': np.mean([r for r, _ in runs], axis=0),
         'informativeness_per_factor': np.mean([acc for _, acc in runs], axis=0),
         'seeds': {}}
  for key in ('disentanglement', 'completeness', 'informativeness'):
    values = [run[key] for run in per_seed]
    name = f'dci_{key}'
    out['seeds'][name] = values
    out[name] = None if values[0] is None else float(np.mean(values))
    out[f'{name}_std'] = None if values[0] is None else float(np.std(values))
  return out


def dims_by_factor(normalized_mi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Dimensions ordered by the factor they share most information with, then by that share
  (descending): (order (C,), the factor of each ordered dimension (C,))."""
  best = np.argmax(normalized_mi, axis=1)
  order = np.lexsort((-normalized_mi.max(axis=1), best))
  return order, best[order]


def plot_mutual_information(normalized_mi: np.ndarray, factor_names: list[str], path: str, title: str) -> None:
  """Heatmap of I(z_i; v_f) / H(v_f), factors as rows, dimensions as columns grouped by the factor they
  share most information with (lines between the groups)."""
  order, owner = dims_by_factor(normalized_mi)
  c, f = normalized_mi.shape
  fig, ax = plt.subplots(figsize=(max(6.0, min(2.5 + 0.03 * c, 16.0)), 1.3 + 0.45 * f))
  image = ax.imshow(normalized_mi[order].T, aspect='auto', cmap='viridis', vmin=0,
                    vmax=max(float(normalized_mi.max()), 1e-6), interpolation='nearest')
  for edge in np.flatnonzero(np.diff(owner)) + 0.5:
    ax.axvline(edge, color='white', lw=1)
  ax.set_yticks(range(f), factor_names)
  if c <= 40:
    ax.set_xticks(range(c), order, fontsize=6, rotation=90)
  else:
    ax.set_xticks([])
  ax.set_xlabel('dimension, grouped by the factor it shares most information with')
  fig.colorbar(image, ax=ax, label='I(z; v) / H(v)', fraction=0.03, pad=0.01)
  ax.set_title(title, fontsize=9)
  fig.tight_layout()
  io.save_figure(fig, path)


def plot_posterior(kl: np.ndarray | None, variance: np.ndarray, path: str, title: str) -> None:
  """Per dimension, sorted: the variance of the posterior mean over items against the active-unit
  threshold, and (SIM, `kl` (C,) given) the mean KL of the posterior to N(0, 1) against COLLAPSED_KL."""
  panels = [(variance, ACTIVE_UNIT_THRESHOLD, 'Var over items of the mean (active unit: above the line)')]
  if kl is not None:
    panels.append((kl, COLLAPSED_KL, 'KL(q(z|x) ‖ N(0, 1)) per frame, nats (collapsed: below the line)'))
  fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 3.0), squeeze=False)
  for ax, (values, line, label) in zip(axes[0], panels):
    ax.bar(np.arange(len(values)), np.maximum(np.sort(values)[::-1], 1e-12), width=1.0, color='tab:blue')
    ax.axhline(line, color='red', lw=0.8)
    ax.set_yscale('log')
    ax.set_title(label, fontsize=8)
    ax.set_xlabel('dimension (sorted)')
  fig.suptitle(title, fontsize=9)
  fig.tight_layout()
  io.save_figure(fig, path)
