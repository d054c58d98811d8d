"""Every label the console shows, in English and Bahasa Indonesia.

Pure: a table and a lookup. The language is chosen once at start-up (``--lang``, the config file,
else the locale); ``t(key, **fields)`` formats the label in that language. A missing key is a
bug, so it raises rather than showing the key.
"""

from __future__ import annotations

import locale
import os

LANGUAGES = ("en", "id")

_language = "en"

STRINGS: dict[str, tuple[str, str]] = {
    # key: (English, Bahasa Indonesia)
    # bindings (footer, help, command palette)
    "key.on_air": ("On air", "Siarkan"),
    "key.on_air_n": ("Put booth {n} on air", "Siarkan bilik {n}"),
    "key.off_air": ("Nobody on air", "Tanpa siaran"),
    "key.next": ("Next", "Berikut"),
    "key.previous": ("Previous", "Sebelum"),
    "key.longest": ("Longest waiting", "Terlama menunggu"),
    "key.approve": ("Approve", "Setujui"),
    "key.reject": ("Reject", "Tolak"),
    "key.reopen": ("Reopen", "Buka lagi"),
    "key.zoom": ("Zoom", "Perbesar"),
    "key.mute": ("Mute", "Bisu"),
    "key.finish": ("Finish", "Selesai"),
    "key.escalate": ("Escalate", "Eskalasi"),
    "key.snapshot": ("Snapshot", "Potret"),
    "key.help": ("Help", "Bantuan"),
    "key.quit": ("Quit", "Keluar"),
    "key.overview": ("Office", "Kantor"),
    "key.desks": ("Desks", "Meja"),
    # help texts (help screen, command palette)
    "help.title": ("Keys", "Tombol"),
    "help.on_air": (
        "Put the booth in that slot on air: only it hears you, you hear it at full level",
        "Siarkan bilik di slot itu: hanya bilik itu yang mendengar Anda",
    ),
    "help.off_air": (
        "Take every booth off air: no booth hears you",
        "Hentikan siaran: tidak ada bilik yang mendengar Anda",
    ),
    "help.next": ("Select the next slot", "Pilih slot berikutnya"),
    "help.previous": ("Select the previous slot", "Pilih slot sebelumnya"),
    "help.longest": (
        "Put on air the booth waiting longest since you last spoke to it",
        "Siarkan bilik yang paling lama menunggu sejak terakhir Anda ajak bicara",
    ),
    "help.approve": (
        "Approve the current step of the selected visit",
        "Setujui langkah saat ini dari kunjungan terpilih",
    ),
    "help.reject": (
        "Reject the current step with a reason from the list",
        "Tolak langkah saat ini dengan alasan dari daftar",
    ),
    "help.reopen": ("Reopen the last decision", "Buka lagi keputusan terakhir"),
    "help.zoom": ("Show the selected booth full screen, and back", "Tampilkan bilik penuh layar"),
    "help.mute": ("Mute or unmute your microphone", "Bisukan atau aktifkan mikrofon Anda"),
    "help.finish": ("Finish the visit (asks for the outcome)", "Akhiri kunjungan (pilih hasil)"),
    "help.escalate": (
        "Escalate the visit to a supervisor with a note",
        "Eskalasi kunjungan ke supervisor dengan catatan",
    ),
    "help.snapshot": (
        "Save the selected booth's picture as PNG; its SHA-256 goes to the audit trail",
        "Simpan gambar bilik terpilih sebagai PNG; SHA-256 dicatat di jejak audit",
    ),
    "help.help": ("Show this help", "Tampilkan bantuan ini"),
    "help.quit": ("Quit (asks first if visits are open)", "Keluar (bertanya bila ada kunjungan)"),
    "help.overview": ("Office overview", "Ringkasan kantor"),
    "help.desks": ("Watch another desk", "Awasi meja lain"),
    "help.close": ("esc closes · ↑↓ scroll", "esc menutup · ↑↓ gulir"),
    # tiles
    "tile.empty": ("empty slot", "slot kosong"),
    "tile.no_booths": ("waiting for claimants", "menunggu peserta"),
    "tile.on_air": ("ON AIR", "SIARAN"),
    "tile.connecting": ("connecting…", "menyambung…"),
    "tile.reconnecting": ("reconnecting…", "menyambung ulang…"),
    "tile.failed": ("link failed, retrying", "sambungan gagal, mencoba lagi"),
    "tile.no_video": ("no video", "tanpa video"),
    "tile.paused": ("video paused", "video dijeda"),
    "tile.away": ("away since {at}", "pergi sejak {at}"),
    "tile.visit": ("visit", "kunjungan"),
    "tile.spoke": ("spoke", "bicara"),
    "tile.never": ("never", "belum"),
    "tile.in": ("in", "lama"),
    "tile.quiet": ("quiet", "diam"),
    "tile.link": ("link", "jaringan"),
    "tile.audio": ("audio", "suara"),
    "grade.good": ("good", "baik"),
    "grade.fair": ("fair", "sedang"),
    "grade.poor": ("poor", "buruk"),
    "link.connecting": ("connecting", "menyambung"),
    "link.connected": ("connected", "tersambung"),
    "link.reconnecting": ("reconnecting", "menyambung ulang"),
    "link.failed": ("failed", "gagal"),
    "link.closed": ("closed", "tertutup"),
    "link.none": ("-", "-"),
    # steps
    "step.identity": ("Identity (e-KTP)", "Identitas (e-KTP)"),
    "step.membership": ("Membership card", "Kartu peserta"),
    "step.family_card": ("Family card (KK)", "Kartu Keluarga (KK)"),
    "step.bank_book": ("Bank book", "Buku tabungan"),
    "step.termination_letter": ("Termination letter", "Surat paklaring"),
    "step.decision": ("Decision", "Keputusan"),
    "step.accident_report": ("Accident report", "Laporan kecelakaan"),
    "step.medical_report": ("Medical report", "Laporan medis"),
    "short.accident_report": ("Accident", "Laka"),
    "short.medical_report": ("Medical", "Medis"),
    "short.identity": ("ID", "KTP"),
    "short.membership": ("Member", "Peserta"),
    "short.family_card": ("KK", "KK"),
    "short.bank_book": ("Bank", "Buku"),
    "short.termination_letter": ("Letter", "Surat"),
    "short.decision": ("Decide", "Putus"),
    # status line and messages
    "status.connecting": ("connecting…", "menyambung…"),
    "status.cannot_connect": (
        "cannot connect to {url}: {error}",
        "tidak bisa tersambung ke {url}: {error}",
    ),
    "status.connected": (
        "{role} {sub} · office {office} · desk {desk}",
        "{role} {sub} · kantor {office} · meja {desk}",
    ),
    "status.lost": (
        "connection to {url} lost, reconnecting…",
        "sambungan ke {url} terputus, menyambung ulang…",
    ),
    "status.no_desk": ("no desk to watch in this office yet", "belum ada meja untuk diawasi"),
    "status.muted": ("MIC MUTED", "MIK BISU"),
    "status.live": ("mic live", "mik aktif"),
    "status.queue": ("queue {n}", "antrean {n}"),
    "who": ("slot {slot} · {name}", "slot {slot} · {name}"),
    "who.nobody": ("nobody", "tidak ada"),
    "msg.slot_empty": ("slot {n} is empty", "slot {n} kosong"),
    "msg.off_air": ("nobody on air: no booth hears you", "tanpa siaran: tidak ada bilik mendengar"),
    "msg.cancelled": ("{who}: {what} cancelled", "{who}: {what} dibatalkan"),
    "msg.abandoned": (
        "{who}: visit abandoned (the booth left)",
        "{who}: kunjungan ditinggalkan (bilik pergi)",
    ),
    "msg.outcome_blocked": (
        "{who}: cannot finish as {outcome}: {why}",
        "{who}: tidak bisa diakhiri sebagai {outcome}: {why}",
    ),
    "why.completed": (
        "needs every step approved ({approved}/{total} approved)",
        "perlu semua langkah disetujui ({approved}/{total} disetujui)",
    ),
    "why.rejected": ("needs a rejected step", "perlu langkah yang ditolak"),
    "msg.no_visit": ("no visit in the selected slot", "tidak ada kunjungan di slot terpilih"),
    "msg.all_decided": ("every step is decided", "semua langkah sudah diputuskan"),
    "msg.nothing_to_reopen": ("no decision to reopen", "tidak ada keputusan untuk dibuka"),
    "msg.nobody_waiting": ("no other booth is waiting", "tidak ada bilik lain yang menunggu"),
    "msg.sending": (
        "{who}: {what} sent, waiting for the server…",
        "{who}: {what} dikirim, menunggu server…",
    ),
    "msg.done": ("{who}: {what} recorded", "{who}: {what} tercatat"),
    "msg.refused": ("{who}: {what} refused: {error}", "{who}: {what} ditolak: {error}"),
    "msg.lost": (
        "{who}: {what} not confirmed: {error}",
        "{who}: {what} belum terkonfirmasi: {error}",
    ),
    "msg.muted": ("microphone muted", "mikrofon dibisukan"),
    "msg.unmuted": ("microphone live", "mikrofon aktif"),
    "msg.no_mute": ("muting is not available", "bisu tidak tersedia"),
    "msg.no_frame": ("no picture from this booth yet", "belum ada gambar dari bilik ini"),
    "msg.snapshot_saved": (
        "snapshot saved · sha256 {sha} · {path}",
        "potret disimpan · sha256 {sha} · {path}",
    ),
    "msg.snapshot_recorded": (
        "snapshot recorded · sha256 {sha} · {path}",
        "potret tercatat · sha256 {sha} · {path}",
    ),
    "msg.read_only": (
        "read-only: supervisors cannot change anything",
        "hanya-baca: supervisor tidak dapat mengubah",
    ),
    "what.focus": ("on air", "siaran"),
    "what.approve": ("approval", "persetujuan"),
    "what.reject": ("rejection", "penolakan"),
    "what.reopen": ("reopen", "buka lagi"),
    "what.finish": ("finish", "penyelesaian"),
    "what.escalate": ("escalation", "eskalasi"),
    "what.snapshot": ("snapshot record", "catatan potret"),
    # dialogs
    "dialog.reason": (
        "{who} · reject “{step}”: pick a reason",
        "{who} · tolak “{step}”: pilih alasan",
    ),
    "dialog.outcome": ("{who} · finish the visit: outcome", "{who} · akhiri kunjungan: hasil"),
    "dialog.note": (
        "{who} · escalate: note for the supervisor",
        "{who} · eskalasi: catatan untuk supervisor",
    ),
    "dialog.not_on_air": (
        "{who} ({booth}) is not on air (on air: {on_air}). {what} for {name} anyway?",
        "{who} ({booth}) tidak sedang disiarkan (siaran: {on_air}). Tetap {what} untuk {name}?",
    ),
    "dialog.go_ahead": ("Yes: {what} for {who}", "Ya: {what} untuk {who}"),
    "dialog.cancel": ("No, cancel", "Tidak, batal"),
    "outcome.blocked": ("{label} (not possible: {why})", "{label} (tidak bisa: {why})"),
    "dialog.note_placeholder": (
        "what should the supervisor know?",
        "apa yang perlu diketahui supervisor?",
    ),
    "dialog.quit": (
        "{n} visit(s) still open. Quit anyway?",
        "{n} kunjungan masih terbuka. Tetap keluar?",
    ),
    "dialog.keys": ("enter choose · esc cancel", "enter pilih · esc batal"),
    "dialog.yes": ("Quit", "Keluar"),
    "dialog.no": ("Stay", "Tetap"),
    "outcome.completed": ("completed", "selesai"),
    "outcome.rejected": ("rejected", "ditolak"),
    "outcome.abandoned": ("abandoned (claimant left)", "ditinggalkan (peserta pergi)"),
    "outcome.escalated": ("escalated", "dieskalasi"),
    # supervisor
    "banner.read_only": (
        "READ-ONLY · supervisor view · desk {desk}",
        "HANYA-BACA · tampilan supervisor · meja {desk}",
    ),
    "banner.overview": ("READ-ONLY · office overview", "HANYA-BACA · ringkasan kantor"),
    "overview.title": ("Office {office}", "Kantor {office}"),
    "overview.desk": ("desk", "meja"),
    "overview.officer": ("officer", "petugas"),
    "overview.load": ("load", "beban"),
    "overview.on_air": ("on air", "siaran"),
    "overview.queue": ("Queue", "Antrean"),
    "overview.waiting": ("waiting", "menunggu"),
    "overview.median_wait": ("median wait today", "median tunggu hari ini"),
    "overview.per_hour": ("visits per hour", "kunjungan per jam"),
    "overview.outcomes": ("decisions by outcome", "keputusan per hasil"),
    "overview.in_queue": ("{n} in queue", "{n} dalam antrean"),
    "overview.no_stats": (
        "(figures need the server's office_stats)",
        "(angka perlu office_stats dari server)",
    ),
    "overview.pick": ("Watch desk", "Awasi meja"),
    "overview.none": ("nobody", "tidak ada"),
    # the supervisor's alerts and escalations (console/escalations.py)
    "msg.escalated": (
        "{who}: handed to a supervisor (the booth waits for them; this slot is free)",
        "{who}: diserahkan ke supervisor (bilik menunggu supervisor; slot ini kosong)",
    ),
    "key.alerts": ("Alerts", "Peringatan"),
    "help.alerts": (
        "Alerts and escalations: go where one is, take an escalation",
        "Peringatan dan eskalasi: pergi ke tempatnya, ambil eskalasi",
    ),
    "key.close": ("Close", "Tutup"),
    "key.take": ("Take", "Ambil"),
    "banner.alerts": ("alerts and escalations", "peringatan dan eskalasi"),
    "alerts.title": ("Office {office}: alerts", "Kantor {office}: peringatan"),
    "alerts.go": ("Go there / take", "Ke sana / ambil"),
    "alerts.kind": ("alert", "peringatan"),
    "alerts.where": ("where", "di mana"),
    "alerts.booth": ("booth", "bilik"),
    "alerts.for": ("for", "selama"),
    "alerts.at_slot": ("desk {desk} slot {slot}", "meja {desk} slot {slot}"),
    "alerts.at_desk": ("from desk {desk}", "dari meja {desk}"),
    "alerts.in_queue": ("queue", "antrean"),
    "alerts.booth_only": ("its booth", "biliknya"),
    "alerts.new_escalation": (
        "escalation waiting: {booth} ({n} new) · n to see it",
        "eskalasi menunggu: {booth} ({n} baru) · n untuk melihat",
    ),
    "alerts.unavailable": (
        "alerts are not available (no answer from the server)",
        "peringatan tidak tersedia (server tidak menjawab)",
    ),
    "alert.escalation_waiting": ("escalation waiting", "eskalasi menunggu"),
    "alert.booth_away": ("booth disconnected", "bilik terputus"),
    "alert.not_spoken_to": ("not spoken to", "belum diajak bicara"),
    "alert.queue_wait": ("long queue wait", "antre lama"),
    "alert.abandoned": ("abandoned", "ditinggalkan"),
    "escalations.title": ("Escalations", "Eskalasi"),
    "escalations.from": ("from", "dari"),
    "escalations.note": ("note", "catatan"),
    "escalations.waiting": ("waiting", "menunggu"),
    "escalations.taken_by": ("taken by", "diambil oleh"),
    "escalations.step": ("step", "langkah"),
    "escalations.nobody": ("nobody yet", "belum ada"),
    "escalations.all_decided": ("all decided", "semua diputuskan"),
    "escalations.none_selected": ("no escalation selected", "tidak ada eskalasi terpilih"),
    "escalations.take_first": (
        "take this escalation first (t)",
        "ambil eskalasi ini dulu (t)",
    ),
    "escalations.taken": (
        "{visit}: taken, it is yours to decide",
        "{visit}: diambil, Anda yang memutuskan",
    ),
    "escalations.refused": (
        "{visit}: cannot take: {error}",
        "{visit}: tidak bisa diambil: {error}",
    ),
    # why the console stops (one line on stderr, non-zero exit)
    "fatal.refused": (
        "the server refused the token ({error}): get a new token",
        "server menolak token ({error}): minta token baru",
    ),
    "fatal.replaced": (
        "another console took over this desk ({error})",
        "konsol lain mengambil alih meja ini ({error})",
    ),
    "fatal.wrong_role": (
        "this is a {role} token: use `lapak supervise`",
        "ini token {role}: gunakan `lapak supervise`",
    ),
    # the supervisor's voice: monitor, coach, barge (keys, help, status lines)
    "key.monitor": ("Listen only", "Dengar saja"),
    "key.coach": ("Coach", "Bimbing"),
    "key.barge": ("Barge in", "Ikut bicara"),
    "help.monitor": (
        "Stop speaking: watch and listen only",
        "Berhenti bicara: hanya mengawasi dan mendengar",
    ),
    "help.coach": (
        "Speak to the officer only (the claimant never hears you)",
        "Bicara hanya kepada petugas (pemohon tidak mendengar Anda)",
    ),
    "help.barge": (
        "Join the on-air conversation: the claimant and the officer hear you",
        "Ikut percakapan yang sedang siaran: pemohon dan petugas mendengar Anda",
    ),
    "mode.monitor": ("listening only", "hanya mendengar"),
    "mode.coach": ("coaching", "membimbing"),
    "mode.barge": ("barging in", "ikut bicara"),
    "supervise.now": (
        "Desk {desk}: {mode}",
        "Meja {desk}: {mode}",
    ),
    "supervise.refused": (
        "Cannot switch to {mode}: {error}",
        "Tidak dapat beralih ke {mode}: {error}",
    ),
    "supervise.no_desk": ("No desk is watched", "Tidak ada meja yang diawasi"),
    "banner.coach": (
        "COACHING · desk {desk} · the officer hears you, the claimant does not",
        "MEMBIMBING · meja {desk} · petugas mendengar Anda, pemohon tidak",
    ),
    "banner.barge": (
        "BARGE · desk {desk} · the claimant on air and the officer hear you",
        "IKUT BICARA · meja {desk} · pemohon yang siaran dan petugas mendengar Anda",
    ),
    # the officer's line while a supervisor coaches or barges the desk (console/app.py)
    "supervised.coach": (
        "Coached by {sub} (only you hear them)",
        "Dibimbing oleh {sub} (hanya Anda yang mendengar)",
    ),
    "supervised.barge": (
        "{sub} is barging (the claimant hears them)",
        "{sub} ikut bicara (pemohon mendengarnya)",
    ),
    # the supervisor's alert list: an officer's console grades a seated booth's link poor
    "alert.poor_link": ("poor link", "koneksi buruk"),
    # the resolver's link to a taken escalation's booth (console/escalations.py)
    "resolver.link": (
        "{booth}: the claimant hears you · link {state} · {frames} frames · {level:.0f} dBFS",
        "{booth}: pemohon mendengar Anda · tautan {state} · {frames} bingkai · {level:.0f} dBFS",
    ),
    "resolver.none": (
        "take an escalation (t) to speak with its claimant",
        "ambil eskalasi (t) untuk berbicara dengan pemohonnya",
    ),
    # a cluster: the supervisor's session moved to the node serving the desk (issue 14)
    "status.on_node": ("{status} · on node {node}", "{status} · di node {node}"),
    "watch.failed": (
        "Cannot watch desk {desk}: {error}",
        "Tidak dapat mengawasi meja {desk}: {error}",
    ),
    # the claimant's picture in the resolver's view (console/claimant_view.py)
    "resolver.picture_away": ("the booth is away", "bilik sedang terputus"),
    "resolver.away_relink": (
        "{booth} is away: linked again when it is back",
        "{booth} terputus: disambungkan lagi saat kembali",
    ),
}


REASONS_ID: dict[str, str] = {
    "document unreadable": "dokumen tidak terbaca",
    "document missing": "dokumen tidak ada",
    "name does not match": "nama tidak cocok",
    "face does not match the photo": "wajah tidak cocok dengan foto",
    "document expired": "dokumen kedaluwarsa",
    "not the account holder": "bukan pemilik rekening",
}
"""Indonesian labels for the server's default reasons (the value sent stays the server's)."""


def reason_label(reason: str) -> str:
    return REASONS_ID.get(reason, reason) if _language == "id" else reason


def default_language() -> str:
    """``id`` when the locale is Indonesian, else English."""
    for var in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(var)
        if value:
            return "id" if value.lower().startswith(("id", "in_")) else "en"
    code = (locale.getlocale()[0] or "").lower()
    return "id" if code.startswith("id") else "en"


def set_language(lang: str) -> None:
    global _language
    if lang not in LANGUAGES:
        raise ValueError(f"language must be one of {', '.join(LANGUAGES)}, got {lang!r}")
    _language = lang


def language() -> str:
    return _language


def t(key: str, **fields: object) -> str:
    en, id_ = STRINGS[key]
    text = id_ if _language == "id" else en
    return text.format(**fields) if fields else text


def step_label(name: str, short: bool = False) -> str:
    key = f"{'short' if short else 'step'}.{name}"
    return t(key) if key in STRINGS else name
