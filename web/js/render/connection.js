/* The connection: the pill in the header, the offline banner with its countdown, the notice toast. */
import { $ } from "./dom.js";

const PILL = { online: "Connected", connecting: "Connecting…", offline: "Offline" };

/** The banner's sentence: a countdown to the next attempt, or the attempt under way. */
export function offlineText(state, now) {
  if (state.conn === "offline" && state.retryAt !== null) {
    const seconds = Math.max(0, Math.ceil((state.retryAt - now) / 1000));
    return seconds > 0 ? `Reconnecting in ${seconds} s…` : "Reconnecting…";
  }
  return "Reconnecting…";
}

export function renderConnection(state, now) {
  const pill = $("conn-status");
  if (pill.textContent !== PILL[state.conn]) {
    pill.textContent = PILL[state.conn]; // a role=status: changed only when the state changes
    pill.className = `conn conn-${state.conn}`;
  }
  const banner = $("offline");
  const show = state.conn !== "online" && state.wasOffline;
  banner.hidden = !show;
  if (show) {
    $("offline-countdown").textContent = offlineText(state, now);
    $("offline-what").textContent = state.game && !state.game.over
      ? "Your game is kept: it continues where it stopped once the connection is back."
      : "Moves and new games wait until the connection is back.";
  }
}

let shownNotice = 0;
let noticeTimer = null;

export function renderNotice(state) {
  const box = $("toast");
  if (!state.notice || state.notice.id === shownNotice) {
    return;
  }
  shownNotice = state.notice.id;
  $("toast-text").textContent = state.notice.text;
  box.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => {
    box.hidden = true;
  }, 6000);
}
