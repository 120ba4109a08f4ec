/**
 * Dice of one organ label between two label maps, computed directly from the voxels — the tests'
 * own reference, independent of the product's metrics (an organ absent from both counts as 1).
 */
export function organDice(pred: ArrayLike<number>, truth: ArrayLike<number>, l: number): number {
  let i = 0, a = 0, b = 0;
  for (let v = 0; v < pred.length; v++) {
    const p = pred[v] === l, t = truth[v] === l;
    if (p) a++;
    if (t) b++;
    if (p && t) i++;
  }
  return a + b ? (2 * i) / (a + b) : 1;
}
