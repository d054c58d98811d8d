// The booth kiosk: wires the signalling session, the media and the screens together.
//
// Enrolment: an operator opens /booth?enrol=CODE once (the QR code of `lapak enrol`): the page
// trades the one-time code for a booth token (POST /enrol) and keeps the token in localStorage.
// Or /booth#token=… with a token from `lapak token`. Either is removed from the address bar at
// once. The token is sent only inside `hello`.

import { LANGUAGES, language, outcomeText, reasonText, setLanguage, stepLabel, stepReady,
  stepShow, t } from "./i18n.js";
import { BoothMedia, classifyDeviceError, openDevices } from "./media.js";
import { Signal } from "./signal.js";
import { bargeOf, chooseScreen, currentStep, playsOfficer, tokenProblem, visitOpen,
  waitMinutes } from "./view.js";

const TOKEN_KEY = "lapak.booth.token";
const AUDIO_KEY = "lapak.booth.audio";
const LANG_KEY = "lapak.booth.lang";
const FINISHED_RESET_MS = 90000;
const CANCEL_CONFIRM_MS = 5000;

const $ = (selector) => document.querySelector(selector);
const $$ = (selector) => Array.from(document.querySelectorAll(selector));

const state = {
  tokenProblem: null,
  welcome: null,
  net: "connecting",
  retryIn: 0,
  phase: "start",
  status: null,
  devicesError: null,
  devicesDetail: "",
  devicesBusy: false,
  cancelArmed: false,
  screen: "loading",
};

function takeToken() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  const token = fragment.get("token");
  if (token) localStorage.setItem(TOKEN_KEY, token);
  if (fragment.has("audio")) localStorage.setItem(AUDIO_KEY, fragment.get("audio"));
  if (fragment.has("lang")) localStorage.setItem(LANG_KEY, fragment.get("lang"));
  if (location.hash) history.replaceState(null, "", location.pathname + location.search);
  return localStorage.getItem(TOKEN_KEY);
}

// A one-time code in the address (?enrol=CODE): traded for a token, which replaces any older one.
async function enrolFromAddress() {
  const query = new URLSearchParams(location.search);
  const code = query.get("enrol");
  if (!code) return;
  query.delete("enrol");
  const rest = query.toString();
  history.replaceState(null, "", location.pathname + (rest ? `?${rest}` : "") + location.hash);
  try {
    const answer = await fetch("/enrol", {
      method: "POST",
      headers: { Authorization: `Enrol ${code}` },
      cache: "no-store",
    });
    const body = await answer.json();
    if (answer.ok && body.token) localStorage.setItem(TOKEN_KEY, body.token);
    else console.warn("enrolment refused", answer.status, body.error);
  } catch (error) {
    console.warn("enrolment failed", error);
  }
}

const rawAudio = () => localStorage.getItem(AUDIO_KEY) === "raw";

const media = new BoothMedia({
  officerVideo: $("#officer-video"),
  officerAudio: $("#officer-audio"),
  sendAnswer: (visit, sdp, peer, offerId) => {
    const message = { type: "sdp", visit, sdp_type: "answer", sdp };
    if (peer) message.peer = peer;
    if (offerId) message.offer_id = offerId;
    return signal?.request(message).catch(() => {});
  },
  onChange: () => render(),
  iceServers: () => state.welcome?.ice_servers ?? [],
});

let signal = null;
let devicesPromise = null;
let finishedTimer = null;

// -- devices ----------------------------------------------------------------------------------

function ensureDevices() {
  if (media.stream) return Promise.resolve(media.stream);
  if (!devicesPromise) {
    state.devicesBusy = true;
    state.devicesError = null;
    render();
    devicesPromise = openDevices(rawAudio())
      .then((stream) => {
        media.setStream(stream);
        for (const video of $$("video.self")) video.srcObject = stream;
        state.devicesError = null;
        return stream;
      })
      .catch((error) => {
        state.devicesError = classifyDeviceError(error);
        state.devicesDetail = error?.name || String(error);
        return null;
      })
      .finally(() => {
        state.devicesBusy = false;
        devicesPromise = null;
        render();
      });
  }
  return devicesPromise;
}

// -- signalling -------------------------------------------------------------------------------

function onMessage(message) {
  if (message.type === "booth_state") {
    state.status = message;
    media.setOnAir(playsOfficer(message)); // and recorders get the officer only then
    const barge = bargeOf(message);
    media.setBarge(barge.on, barge.peer);
    media.setVideoTier(message.video);
    if (visitOpen(message)) {
      state.phase = "visit";
      if (!media.stream) ensureDevices(); // a resumed visit (reload): the camera again
    } else if (message.state === "ended") {
      media.closePeers();
      clearTimeout(finishedTimer);
      finishedTimer = setTimeout(resetForNext, FINISHED_RESET_MS);
    }
    render();
  } else if (message.type === "peer_left") {
    media.onPeerLeft(message.peer); // a supervisor or recorder has gone: so does its peer
  } else if (message.type === "sdp" && message.sdp_type === "offer") {
    // Answer with whatever devices there are: a camera fixed later gets into the next offer.
    media.noteOffer(message); // the latest offer per peer, before any await
    ensureDevices()
      .then(() => media.onOffer(message))
      .catch(() => {});
  }
}

function connect(token) {
  signal = new Signal(token, {
    onMessage,
    onWelcome: (welcome) => {
      state.welcome = welcome;
      fillClaimTypes(welcome.claim_types ?? []);
      render();
    },
    onStatus: (net, retryIn = 0) => {
      state.net = net;
      state.retryIn = retryIn;
      render();
    },
    onFatal: (code) => {
      state.tokenProblem = tokenProblem(code);
      media.closePeers();
      media.stopStream();
      render();
    },
  });
  signal.start();
}

// -- actions ----------------------------------------------------------------------------------

function fillClaimTypes(types) {
  const select = $("#claim-type");
  const chosen = select.value;
  select.replaceChildren(
    ...types.map((type) => {
      const option = document.createElement("option");
      option.value = type;
      option.textContent = type;
      return option;
    }),
  );
  if (types.includes(chosen)) select.value = chosen;
}

function onStartSubmit(event) {
  event.preventDefault();
  media.audio(); // a user gesture: the officer's voice may play later
  const name = $("#name").value.trim();
  const membership = $("#membership").value.trim();
  const error = $("#start-error");
  if (!name || !membership) {
    error.textContent = t("start.required");
    error.hidden = false;
    return;
  }
  error.hidden = true;
  state.phase = "devices";
  render();
  ensureDevices();
}

async function onContinue() {
  const button = $("#devices-continue");
  button.disabled = true;
  try {
    await signal.request({
      type: "start_visit",
      claimant: {
        name: $("#name").value.trim(),
        membership_no: $("#membership").value.trim(),
        claim_type: $("#claim-type").value,
      },
    });
  } catch (error) {
    state.phase = "start";
    const shown = $("#start-error");
    shown.textContent = `${error.message}`;
    shown.hidden = false;
  } finally {
    button.disabled = false;
    render();
  }
}

function onRetry() {
  media.audio();
  ensureDevices();
}

function onBack() {
  media.stopStream();
  state.devicesError = null;
  state.phase = "start";
  render();
}

function onCancel() {
  if (!state.cancelArmed) {
    state.cancelArmed = true;
    render();
    setTimeout(() => {
      state.cancelArmed = false;
      render();
    }, CANCEL_CONFIRM_MS);
    return;
  }
  state.cancelArmed = false;
  const visit = state.status?.visit;
  if (visit) {
    signal.request({ type: "end_visit", visit, outcome: "abandoned" }).catch(() => {});
  }
}

function resetForNext() {
  clearTimeout(finishedTimer);
  media.closePeers();
  media.stopStream();
  state.status = null;
  state.phase = "start";
  state.devicesError = null;
  $("#start-form").reset();
  setLanguage(localStorage.getItem(LANG_KEY) || "id");
  render();
}

function onLanguage() {
  const next = LANGUAGES[(LANGUAGES.indexOf(language()) + 1) % LANGUAGES.length];
  setLanguage(next);
  render();
}

// -- rendering --------------------------------------------------------------------------------

function renderChecklist(status) {
  const steps = status?.steps ?? [];
  const current = currentStep(status);
  for (const list of $$("ol.checklist")) {
    list.replaceChildren(
      ...steps.map((step, index) => {
        const item = document.createElement("li");
        item.dataset.step = step.name;
        item.dataset.status = step.status;
        if (current && current.index === index && status.state === "active") {
          item.classList.add("current");
        }
        const label = document.createElement("span");
        label.className = "step-label";
        label.textContent = stepLabel(step.name);
        const mark = document.createElement("span");
        mark.className = "step-status";
        mark.textContent = t(`status.${step.status}`);
        item.append(label, mark);
        if (step.status === "rejected" && step.reason) {
          const reason = document.createElement("span");
          reason.className = "step-reason";
          reason.textContent = reasonText(step.reason);
          item.append(reason);
        }
        return item;
      }),
    );
  }
}

function renderScreen(screen) {
  const status = state.status;
  const step = currentStep(status);
  for (const el of $$(".next-ready")) {
    el.textContent = step ? stepReady(step.name) : t("waiting.done");
  }
  if (screen === "token") {
    $("#token-title").textContent = t(`token.${state.tokenProblem}.title`);
    $("#token-body").textContent = t(`token.${state.tokenProblem}.body`);
  } else if (screen === "connecting") {
    const body = $("[data-for=connecting] p.big");
    body.textContent = state.net === "offline"
      ? t("net.offline", { s: state.retryIn })
      : t("connecting.body");
  } else if (screen === "devices") {
    const error = state.devicesError;
    $("[data-for=devices]").dataset.error = error ?? (state.devicesBusy ? "starting" : "ok");
    $("[data-for=devices]").dataset.failed = error ? "true" : "false";
    $("#devices-title").textContent = error ? t(`devices.${error}.title`) : t("devices.title");
    $("#devices-body").textContent = error
      ? t(`devices.${error}.body`, { error: state.devicesDetail })
      : state.devicesBusy ? t("devices.starting") : t("devices.lead");
    $("#devices-retry").hidden = !error;
    $("#devices-continue").hidden = visitOpen(status) || Boolean(error);
    $("#devices-continue").disabled = Boolean(error) || state.devicesBusy || !media.stream;
    $("#devices-back").hidden = visitOpen(status);
    $("#devices-note").hidden = !visitOpen(status);
  } else if (screen === "queue") {
    $("#queue-position").textContent = status.position ?? "–";
    const minutes = waitMinutes(status.estimated_wait_s);
    $("#queue-wait").textContent = minutes === null
      ? t("queue.unknown")
      : t("queue.minutes", { n: minutes });
  } else if (screen === "waiting") {
    const connected = media.pcState === "connected";
    $("[data-for=waiting]").dataset.media = connected ? "connected" : "connecting";
    $("#waiting-title").textContent = connected ? t("waiting.title") : t("waiting.connecting");
  } else if (screen === "on-air") {
    $("#prompt-text").textContent = step ? stepShow(step.name) : t("waiting.done");
    $("#sound").hidden = !media.soundBlocked;
    $("#barge").hidden = !status.supervisor_present; // a supervisor barged in: say so
  } else if (screen === "escalated") {
    const joined = Boolean(status.supervisor_present); // the supervisor took the visit
    $("[data-for=escalated]").dataset.supervisor = joined ? "present" : "coming";
    $("#escalated-title").textContent = t(joined ? "escalated.with" : "escalated.title");
    $("#escalated-body").textContent = t(joined ? "escalated.with_body" : "escalated.body");
  } else if (screen === "finished") {
    const [title, next] = outcomeText(status.outcome);
    $("[data-for=finished]").dataset.outcome = status.outcome ?? "";
    $("#outcome-title").textContent = title;
    $("#outcome-next").textContent = next;
    $("#reference").textContent = status.visit;
  }
  for (const button of $$("button.cancel")) {
    button.textContent = state.cancelArmed ? t("visit.cancel_confirm") : t("visit.cancel");
    button.classList.toggle("armed", state.cancelArmed);
  }
}

// "This visit is recorded" from routing (booth_state.recorded) until the visit ends; the
// server logs once per visit that the claimant was shown it (recording_notice_shown).
const noticeLogged = new Set();

function renderRecordingNotice(status) {
  const shown = Boolean(status?.recorded) && status?.state !== "ended";
  $("#recording-notice").hidden = !shown;
  if (!shown || noticeLogged.has(status.visit) || !signal) return;
  noticeLogged.add(status.visit);
  signal
    .request({ type: "recording_notice_shown", visit: status.visit })
    .catch(() => noticeLogged.delete(status.visit)); // shown again on the next booth_state
}

function render() {
  const screen = chooseScreen(state);
  for (const el of $$("[data-t]")) el.textContent = t(el.dataset.t);
  $("#lang").textContent = t("lang.switch");
  const net = $("#net");
  const banner = state.welcome && state.net === "reconnecting" && !state.tokenProblem;
  net.hidden = !banner;
  net.textContent = banner ? t("net.reconnecting") : "";
  renderChecklist(state.status);
  renderRecordingNotice(state.status);
  renderScreen(screen);
  if (screen !== state.screen) {
    for (const section of $$("section.screen")) section.hidden = section.dataset.for !== screen;
    state.screen = screen;
  }
  document.body.dataset.screen = screen;
  document.body.dataset.net = state.net;
}

function tickMeter() {
  if (state.screen !== "devices") return;
  const db = media.micMeter?.levelDb() ?? -120;
  // -70 dB (silence) .. -10 dB (loud) fills the bar
  const fill = Math.max(0, Math.min(1, (db + 70) / 60));
  $("#mic-meter").style.width = `${Math.round(fill * 100)}%`;
  $("#mic-meter").dataset.db = db.toFixed(1);
}

// Diagnostics for support staff and the browser tests: what the page shows and plays.
// Nothing secret: no token, no session id.
window.lapakKiosk = Object.freeze({
  snapshot(micHz = 650, officerHz = 1200, supervisorHz = 1600) {
    return {
      screen: state.screen,
      language: language(),
      net: state.net,
      reconnects: signal?.reconnects ?? 0,
      resumed: Boolean(state.welcome?.resumed),
      visit: state.status?.visit ?? null,
      visitState: state.status?.state ?? null,
      onAir: Boolean(state.status?.on_air),
      devicesError: state.devicesError,
      media: media.diagnostics({ mic: micHz, officer: officerHz, supervisor: supervisorHz }),
    };
  },
});

// The self view and checklist stand beside two screens: one copy in index.html, placed twice.
function placeSides() {
  for (const side of $$("aside[data-side]")) side.append($("#side").content.cloneNode(true));
  // A clone's `muted` attribute does not mute it in every browser: its own mic must never play.
  for (const video of $$("aside[data-side] video")) video.muted = true;
}

function main() {
  placeSides();
  setLanguage(localStorage.getItem(LANG_KEY) || "id");
  $("#lang").addEventListener("click", onLanguage);
  $("#start-form").addEventListener("submit", onStartSubmit);
  $("#devices-continue").addEventListener("click", onContinue);
  $("#devices-retry").addEventListener("click", onRetry);
  $("#devices-back").addEventListener("click", onBack);
  $("#finished-done").addEventListener("click", resetForNext);
  $("#sound").addEventListener("click", () => {
    media.audio();
    render();
  });
  for (const button of $$("button.cancel")) button.addEventListener("click", onCancel);
  setInterval(tickMeter, 100);
  setInterval(render, 1000); // sound-blocked hint, media state
  enrolFromAddress().then(start);
}

function start() {
  const token = takeToken();
  if (!token) {
    state.tokenProblem = "missing";
    render();
    return;
  }
  render();
  connect(token);
}

main();
