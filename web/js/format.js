/* Moves, labels and number formats shared by the client's modules (pure). */

export const MOVES = Object.freeze(["rock", "paper", "scissors"]);
export const MOVE_LABEL = Object.freeze({ rock: "Rock", paper: "Paper", scissors: "Scissors" });
/** The move each move beats (game.md: rock beats scissors, scissors beats paper, paper beats rock). */
export const PREY = Object.freeze({ rock: "scissors", paper: "rock", scissors: "paper" });
/** The move that beats each move. */
export const HUNTER = Object.freeze({ rock: "paper", paper: "scissors", scissors: "rock" });
export const FAMILY_LABEL = Object.freeze({
  mlp: "neural network",
  xgboost: "XGBoost",
  logistic: "logistic regression"
});

/** A score or round value, one decimal ("7.5"); "–" when not a number. */
export function fmt(x) {
  const n = Number(x);
  return Number.isFinite(n) ? (Math.round(n * 10) / 10).toFixed(1) : "–";
}

/** Expected points, two decimals with a sign ("+0.25", "−1.10", "0.00"). */
export function signed(x) {
  const n = Number(x);
  if (!Number.isFinite(n)) {
    return "–";
  }
  const s = Math.abs(n).toFixed(2);
  return s === "0.00" ? s : (n < 0 ? "\u2212" : "+") + s;
}

export function pct(p) {
  return Math.round(Number(p) * 100) + " %";
}

/** The target without a trailing ".0" ("10"). */
export function target(x) {
  return fmt(x).replace(/\.0$/, "");
}

/** The moves named in `list`, joined for a sentence ("rock", "rock or paper"). */
export function orList(list) {
  return list.length < 2 ? list.join("") : list.slice(0, -1).join(", ") + " or " + list[list.length - 1];
}
