// Every text on the kiosk, in Bahasa Indonesia (the default) and English.
// Step names, outcomes and rejection reasons come from the server; unknown ones are shown
// with a readable fallback, never left blank.

export const LANGUAGES = ["id", "en"];

const TEXT = {
  id: {
    "app.title": "Lapak — Layanan Klaim Jarak Jauh",
    "lang.switch": "English",
    "net.reconnecting": "Koneksi terputus. Menyambung kembali…",
    "net.offline": "Tidak dapat menghubungi kantor. Mencoba lagi dalam {s} detik…",
    "token.missing.title": "Bilik ini belum didaftarkan",
    "token.missing.body":
      "Petugas kantor perlu mendaftarkan bilik ini sekali. Silakan hubungi petugas.",
    "token.expired.title": "Izin bilik ini sudah kedaluwarsa",
    "token.expired.body":
      "Petugas kantor perlu mendaftarkan ulang bilik ini dengan token baru.",
    "token.invalid.title": "Izin bilik ini tidak berlaku",
    "token.invalid.body":
      "Token bilik ini dicabut atau tidak dikenali server. Petugas kantor perlu mendaftarkan ulang bilik ini.",
    "token.office.title": "Bilik ini milik kantor lain",
    "token.office.body": "Server ini tidak melayani kantor bilik ini. Silakan hubungi petugas.",
    "token.operator":
      "Untuk petugas: buka /booth#token=… dengan token dari `lapak token --role booth`.",
    "connecting.title": "Menghubungkan ke kantor…",
    "connecting.body": "Mohon tunggu sebentar.",
    "start.title": "Selamat datang",
    "start.lead": "Isi data Anda untuk memulai klaim dengan petugas melalui video.",
    "start.name": "Nama lengkap",
    "start.membership": "Nomor kepesertaan",
    "start.claim_type": "Jenis klaim",
    "start.submit": "Lanjut",
    "start.required": "Mohon isi nama dan nomor kepesertaan.",
    "devices.title": "Periksa kamera dan mikrofon",
    "devices.lead": "Pastikan wajah Anda terlihat jelas. Bicaralah: batang suara harus bergerak.",
    "devices.mic": "Suara Anda",
    "devices.starting": "Menyalakan kamera dan mikrofon…",
    "devices.continue": "Mulai kunjungan",
    "devices.retry": "Coba lagi",
    "devices.back": "Kembali",
    "devices.no_camera.title": "Kamera tidak ditemukan",
    "devices.no_camera.body":
      "Tidak ada kamera atau mikrofon yang terpasang. Minta petugas memeriksa kabel kamera, lalu tekan Coba lagi.",
    "devices.denied.title": "Izin kamera ditolak",
    "devices.denied.body":
      "Browser tidak mengizinkan halaman ini memakai kamera dan mikrofon. Minta petugas mengizinkannya, lalu tekan Coba lagi.",
    "devices.busy.title": "Kamera sedang dipakai",
    "devices.busy.body":
      "Kamera atau mikrofon sedang dipakai aplikasi lain. Tutup aplikasi itu, lalu tekan Coba lagi.",
    "devices.other.title": "Kamera tidak dapat dinyalakan",
    "devices.other.body": "Terjadi kesalahan ({error}). Tekan Coba lagi atau hubungi petugas.",
    "devices.insecure.title": "Halaman ini perlu koneksi aman",
    "devices.insecure.body":
      "Browser hanya mengizinkan kamera pada halaman https. Minta petugas membuka bilik ini melalui https.",
    "devices.visit_note": "Kunjungan Anda tetap tersimpan selama kamera diperbaiki.",
    "queue.title": "Mohon tunggu giliran Anda",
    "queue.position": "Nomor antrean Anda",
    "queue.wait": "Perkiraan waktu tunggu",
    "queue.minutes": "± {n} menit",
    "queue.unknown": "sedang dihitung",
    "queue.note": "Petugas akan segera melayani Anda. Tetaplah di depan layar.",
    "waiting.title": "Petugas sedang melayani peserta lain",
    "waiting.connecting": "Menghubungkan video ke meja petugas…",
    "waiting.body": "Mohon tunggu, petugas akan berbicara dengan Anda sebentar lagi.",
    "waiting.next": "Selanjutnya:",
    "waiting.done": "Semua dokumen sudah diperiksa. Petugas sedang memutuskan.",
    "onair.title": "Petugas sedang berbicara dengan Anda",
    "onair.now": "Sekarang:",
    "onair.sound": "Ketuk untuk menyalakan suara",
    "onair.supervisor": "Seorang supervisor bergabung dalam percakapan.",
    "escalated.title": "Seorang supervisor akan bergabung dengan Anda",
    "escalated.body":
      "Kunjungan Anda diteruskan ke supervisor. Mohon tetap di depan kamera, supervisor akan segera berbicara dengan Anda.",
    "escalated.with": "Supervisor sedang bersama Anda",
    "escalated.with_body": "Mohon tetap di depan kamera dan ikuti petunjuk supervisor.",
    "recording.notice": "Kunjungan ini direkam.",
    "checklist.title": "Pemeriksaan",
    "status.pending": "menunggu",
    "status.approved": "disetujui",
    "status.rejected": "ditolak",
    "finished.title": "Kunjungan selesai",
    "finished.reference": "Nomor referensi",
    "finished.keep": "Catat atau foto nomor ini.",
    "finished.again": "Selesai",
    "visit.cancel": "Batalkan kunjungan",
    "visit.cancel_confirm": "Tekan sekali lagi untuk membatalkan",
    "you": "Anda",
  },
  en: {
    "app.title": "Lapak — Remote Claim Service",
    "lang.switch": "Bahasa Indonesia",
    "net.reconnecting": "Connection lost. Reconnecting…",
    "net.offline": "Cannot reach the office. Trying again in {s} s…",
    "token.missing.title": "This booth is not enrolled",
    "token.missing.body": "An office operator needs to enrol this booth once. Please ask the staff.",
    "token.expired.title": "This booth's access has expired",
    "token.expired.body": "An office operator needs to enrol this booth again with a new token.",
    "token.invalid.title": "This booth's access is not valid",
    "token.invalid.body":
      "The booth's token was revoked or is not recognised by the server. An office operator needs to enrol this booth again.",
    "token.office.title": "This booth belongs to another office",
    "token.office.body": "This server does not serve the booth's office. Please ask the staff.",
    "token.operator":
      "For staff: open /booth#token=… with a token from `lapak token --role booth`.",
    "connecting.title": "Connecting to the office…",
    "connecting.body": "Please wait a moment.",
    "start.title": "Welcome",
    "start.lead": "Fill in your details to start your claim with an officer over video.",
    "start.name": "Full name",
    "start.membership": "Membership number",
    "start.claim_type": "Claim type",
    "start.submit": "Next",
    "start.required": "Please fill in your name and membership number.",
    "devices.title": "Check your camera and microphone",
    "devices.lead": "Make sure your face is clearly visible. Speak: the sound bar should move.",
    "devices.mic": "Your voice",
    "devices.starting": "Starting the camera and microphone…",
    "devices.continue": "Start the visit",
    "devices.retry": "Try again",
    "devices.back": "Back",
    "devices.no_camera.title": "No camera found",
    "devices.no_camera.body":
      "No camera or microphone is connected. Ask the staff to check the camera cable, then press Try again.",
    "devices.denied.title": "Camera permission denied",
    "devices.denied.body":
      "The browser does not allow this page to use the camera and microphone. Ask the staff to allow it, then press Try again.",
    "devices.busy.title": "The camera is busy",
    "devices.busy.body":
      "Another application is using the camera or microphone. Close it, then press Try again.",
    "devices.other.title": "The camera could not start",
    "devices.other.body": "Something went wrong ({error}). Press Try again or ask the staff.",
    "devices.insecure.title": "This page needs a secure connection",
    "devices.insecure.body":
      "Browsers allow the camera only on https pages. Ask the staff to open this booth over https.",
    "devices.visit_note": "Your visit is kept while the camera is fixed.",
    "queue.title": "Please wait for your turn",
    "queue.position": "Your place in the queue",
    "queue.wait": "Estimated wait",
    "queue.minutes": "about {n} min",
    "queue.unknown": "being estimated",
    "queue.note": "An officer will be with you soon. Please stay in front of the screen.",
    "waiting.title": "The officer is with another claimant",
    "waiting.connecting": "Connecting the video to the officer's desk…",
    "waiting.body": "Please wait, the officer will speak with you shortly.",
    "waiting.next": "Next:",
    "waiting.done": "All documents have been checked. The officer is deciding.",
    "onair.title": "The officer is speaking with you",
    "onair.now": "Now:",
    "onair.sound": "Tap to turn the sound on",
    "onair.supervisor": "A supervisor has joined the conversation.",
    "escalated.title": "A supervisor will join you",
    "escalated.body":
      "Your visit was passed to a supervisor. Please stay in front of the camera: a supervisor will speak with you shortly.",
    "escalated.with": "A supervisor is with you",
    "escalated.with_body": "Please stay in front of the camera and follow the supervisor.",
    "recording.notice": "This visit is recorded.",
    "checklist.title": "Checks",
    "status.pending": "waiting",
    "status.approved": "approved",
    "status.rejected": "rejected",
    "finished.title": "Visit finished",
    "finished.reference": "Reference number",
    "finished.keep": "Write this number down or take a photo of it.",
    "finished.again": "Done",
    "visit.cancel": "Cancel the visit",
    "visit.cancel_confirm": "Press again to cancel",
    "you": "You",
  },
};

// name: [label, "have it ready" prompt, "show it now" prompt]
const STEPS = {
  id: {
    identity: [
      "Identitas (e-KTP)",
      "Siapkan e-KTP Anda.",
      "Pegang e-KTP Anda di samping wajah, menghadap kamera.",
    ],
    membership: [
      "Kartu kepesertaan",
      "Siapkan kartu atau nomor kepesertaan Anda.",
      "Tunjukkan kartu kepesertaan Anda ke kamera.",
    ],
    family_card: [
      "Kartu Keluarga",
      "Siapkan Kartu Keluarga (KK) Anda.",
      "Tunjukkan Kartu Keluarga Anda ke kamera.",
    ],
    bank_book: [
      "Buku tabungan",
      "Siapkan buku tabungan atas nama Anda.",
      "Tunjukkan halaman depan buku tabungan yang memuat nama Anda.",
    ],
    termination_letter: [
      "Surat keterangan berhenti kerja",
      "Siapkan surat keterangan berhenti kerja (paklaring).",
      "Tunjukkan surat keterangan berhenti kerja (paklaring) ke kamera.",
    ],
    accident_report: [
      "Laporan kecelakaan kerja",
      "Siapkan laporan kecelakaan kerja.",
      "Tunjukkan laporan kecelakaan kerja ke kamera.",
    ],
    medical_report: [
      "Surat keterangan dokter",
      "Siapkan surat keterangan dokter.",
      "Tunjukkan surat keterangan dokter ke kamera.",
    ],
    decision: [
      "Keputusan",
      "Petugas akan memberi keputusan.",
      "Dengarkan keputusan petugas.",
    ],
  },
  en: {
    identity: [
      "Identity (e-KTP)",
      "Have your e-KTP ready.",
      "Hold your e-KTP next to your face, facing the camera.",
    ],
    membership: [
      "Membership card",
      "Have your membership card or number ready.",
      "Show your membership card to the camera.",
    ],
    family_card: [
      "Family card",
      "Have your family card (Kartu Keluarga) ready.",
      "Show your family card to the camera.",
    ],
    bank_book: [
      "Bank book",
      "Have your bank book in your own name ready.",
      "Show the front page of your bank book, with your name.",
    ],
    termination_letter: [
      "Termination letter",
      "Have your letter of employment termination (paklaring) ready.",
      "Show your letter of employment termination (paklaring) to the camera.",
    ],
    accident_report: [
      "Work accident report",
      "Have your work accident report ready.",
      "Show your work accident report to the camera.",
    ],
    medical_report: [
      "Medical certificate",
      "Have your medical certificate ready.",
      "Show your medical certificate to the camera.",
    ],
    decision: [
      "Decision",
      "The officer will give the decision.",
      "Listen to the officer's decision.",
    ],
  },
};

const OUTCOMES = {
  id: {
    completed: [
      "Klaim Anda diterima untuk diproses",
      "Dana akan ditransfer ke rekening Anda setelah klaim diproses. Kantor akan menghubungi Anda bila ada yang perlu dilengkapi.",
    ],
    rejected: [
      "Klaim Anda belum dapat diterima",
      "Lihat alasannya di daftar pemeriksaan. Silakan datang kembali dengan dokumen yang diperlukan.",
    ],
    escalated: [
      "Klaim Anda diteruskan ke supervisor",
      "Supervisor akan meninjau klaim Anda dan kantor akan menghubungi Anda.",
    ],
    abandoned: [
      "Kunjungan dibatalkan",
      "Anda dapat memulai kunjungan baru kapan saja.",
    ],
  },
  en: {
    completed: [
      "Your claim is accepted for processing",
      "The funds are transferred to your account once the claim is processed. The office will contact you if anything is missing.",
    ],
    rejected: [
      "Your claim could not be accepted yet",
      "See the reason in the checklist. Please come back with the documents needed.",
    ],
    escalated: [
      "Your claim is passed to a supervisor",
      "A supervisor will review your claim and the office will contact you.",
    ],
    abandoned: ["The visit was cancelled", "You can start a new visit at any time."],
  },
};

// The server's default rejection reasons (signaling/workflows.toml), in Indonesian.
const REASONS_ID = {
  "document unreadable": "dokumen tidak terbaca",
  "document missing": "dokumen tidak ada",
  "name does not match": "nama tidak sesuai",
  "face does not match the photo": "wajah tidak sesuai dengan foto",
  "document expired": "dokumen kedaluwarsa",
  "not the account holder": "bukan pemilik rekening",
};

let current = "id";

export function setLanguage(lang) {
  current = LANGUAGES.includes(lang) ? lang : "id";
  document.documentElement.lang = current;
}

export function language() {
  return current;
}

export function t(key, vars = {}) {
  const text = TEXT[current][key] ?? TEXT.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(vars[name] ?? ""));
}

function humanize(name) {
  const text = String(name || "").replace(/_/g, " ");
  return text.charAt(0).toUpperCase() + text.slice(1);
}

export function stepLabel(name) {
  return STEPS[current][name]?.[0] ?? humanize(name);
}

export function stepReady(name) {
  const known = STEPS[current][name]?.[1];
  if (known) return known;
  return current === "id" ? `Siapkan: ${humanize(name)}.` : `Have ready: ${humanize(name)}.`;
}

export function stepShow(name) {
  const known = STEPS[current][name]?.[2];
  if (known) return known;
  return current === "id" ? `Tunjukkan: ${humanize(name)}.` : `Please show: ${humanize(name)}.`;
}

export function outcomeText(outcome) {
  return OUTCOMES[current][outcome] ?? [humanize(outcome), ""];
}

export function reasonText(reason) {
  if (!reason) return "";
  return current === "id" ? (REASONS_ID[reason] ?? reason) : reason;
}
