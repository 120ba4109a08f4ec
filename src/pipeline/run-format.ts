/**
 * The files of an annotate run folder, shared by `annotate`, `evaluate`, the report and the server:
 *
 * ```
 * RUN/run.json          models (name, path, sha256, classes), options, seed, versions, timings
 * RUN/pipeline.json     the mask pipeline used (fusion, threshold, constraints)
 * RUN/results.jsonl     one ImageResult per line, in completion order (resume reads it back)
 * RUN/results.csv       the same, flattened, in input order
 * RUN/masks/S.png       candidate mask 0/255 at image resolution (S = image stem)
 * RUN/heatmaps/S.png    fused saliency over the image (colour)
 * RUN/uncertainty/S.png per-pixel std of the MC saliency maps
 * RUN/evaluation.json   written by `medmask evaluate`
 * RUN/report.html       self-contained report
 * ```
 * @module
 */

/** What the pipeline decided for one image. */
export type Decision = 'accept' | 'review' | 'ood';

/** One model's view of one image. */
export interface ModelVerdict {
  model: string;
  predicted: string;
  /** Mean MC probability of the predicted class. */
  probability: number;
  /** Mean MC probability of the target class (the label's, or the ensemble's diagnosis). */
  targetProbability: number;
  agrees: boolean;
  /** Mutual information of this model's MC samples. */
  mi: number;
}

/** One line of results.jsonl. */
export interface ImageResult {
  /** Path as given (relative to the images folder). */
  image: string;
  /** File stem used for the output files. */
  stem: string;
  status: 'ok' | 'error';
  /** For status "error": what went wrong and what to do. */
  error?: string;
  /** Image-level label from the CSV, when given. */
  label?: string;
  /** Ensemble diagnosis: argmax of the mean probability over models and MC samples. */
  predicted?: string;
  /** Mean probability per class over models and samples. */
  probabilities?: Record<string, number>;
  /** The class the mask is for (the label, or the diagnosis without labels). */
  target?: string;
  models?: ModelVerdict[];
  /** Is the target a "normal" class with nothing to segment (e.g. healthy)? */
  normal?: boolean;
  decision?: Decision;
  reasons?: string[];
  /** Review priority, higher first (0 for accepted). */
  priority?: number;
  uncertainty?: {
    /** Predictive entropy of the ensemble mean (nats). */
    entropy: number;
    /** Mean mutual information over models (nats). */
    mi: number;
    /** Mean per-pixel std of the saliency maps inside the mask (0 when no mask). */
    mapStd: number;
    /** Mask-level uncertainty score in [0, 1]: 1 − mean pairwise Dice of the agreeing models' masks. */
    maskScore: number;
    /** Fraction of the salient area (fused map above its threshold) farther than 2.5 % of the image side from the mask. */
    outside?: number;
    /** With mask heads: mean MC Dropout std of the heads' lesion probability inside the mask. */
    headStd?: number;
    /** With mask heads: 1 − Dice between the heads' own mask (mean probability > 0.5, in the ROI) and the final mask. */
    headDisagreement?: number;
    /** Expected gain of reviewing this image (active selection): see docs/annotate.md. */
    expectedGain?: number;
  };
  ood?: { mahalanobis?: number; energy: number; mi: number; score?: number; threshold?: number };
  mask?: string;
  maskPixels?: number;
  heatmap?: string;
  uncertaintyMap?: string;
  thresholds?: number[];
  failures?: string[];
  /** Mask pixels after fusion and after each constraint step. */
  maskTrace?: { step: string; pixels: number }[];
  /** Milliseconds per stage. */
  timings?: Record<string, number>;
}

/** run.json. */
export interface RunInfo {
  medmask: string;
  started: string;
  finished?: string;
  seed: number;
  images: string;
  labels?: string;
  models: { name: string; path: string; sha256: string; classes: string[]; target: string; temperature?: number }[];
  options: Record<string, unknown>;
  counts?: Record<string, number>;
  /** Total seconds per stage over the run. */
  stageSeconds?: Record<string, number>;
}
