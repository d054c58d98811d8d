// Pure: which screen the kiosk shows, from what the page knows. No DOM, no I/O.
//
// The server's `booth_state` decides everything about the visit (queued, at a desk, on air,
// ended); the page adds only what the server cannot know: the token's fate, the connection,
// the claimant's progress through the form and the device check, and device errors.

export const SCREENS = [
  "token", "connecting", "start", "devices", "queue", "waiting", "on-air", "escalated",
  "finished",
];

export function visitOpen(status) {
  // escalated: handed to a supervisor, still open and connected
  return ["queued", "active", "escalated"].includes(status?.state);
}

export function chooseScreen(s) {
  if (s.tokenProblem) return "token";
  if (s.status?.state === "ended") return "finished";
  if (visitOpen(s.status)) {
    if (s.devicesError) return "devices"; // with a retry; the visit keeps its place
    if (s.status.state === "queued") return "queue";
    if (s.status.state === "escalated") return "escalated";
    return s.status.on_air ? "on-air" : "waiting";
  }
  if (!s.welcome) return "connecting";
  if (s.phase === "devices") return "devices";
  return "start";
}

// The step the officer checks now (or next): the server's `current_step` (null once every
// step is decided). The page never works it out from the steps itself.
export function currentStep(status) {
  const index = status?.current_step;
  const steps = status?.steps ?? [];
  return Number.isInteger(index) && index >= 0 && index < steps.length
    ? { index, name: steps[index].name }
    : null;
}

export function waitMinutes(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return null;
  return Math.max(1, Math.ceil(seconds / 60));
}

export function tokenProblem(code) {
  if (code === "missing") return "missing";
  if (code === "token_expired") return "expired";
  if (code === "wrong_office") return "office";
  return "invalid"; // bad_signature, bad_token: revoked, forged or damaged
}

// Whether the page plays the officer (and relays the officer's picture to recorders): on
// air, in an active visit.
export function playsOfficer(status) {
  return Boolean(status?.on_air) && status?.state === "active";
}

// Whose voice plays as a barging supervisor's (docs/protocol.md, "Coach and barge media"):
// `peer` is booth_state.barge_peer, the `peer` of that supervisor's offers: only its voice is
// heard (null: nobody's), `on` while the server names one with supervisor_present, on air in
// an active visit (barging the desk) or in an escalated one (its resolver; no officer on
// air). A server that does not send the field: `peer` undefined, any supervisor whose offer
// sends audio (the latest), on air in an active visit with supervisor_present.
export function bargeOf(status) {
  const present = Boolean(status?.supervisor_present);
  if (status?.barge_peer === undefined) {
    return { on: playsOfficer(status) && present, peer: undefined };
  }
  const peer = typeof status.barge_peer === "string" && status.barge_peer ? status.barge_peer
    : null;
  const speaks = playsOfficer(status) || status.state === "escalated";
  return { on: present && peer !== null && speaks, peer };
}
