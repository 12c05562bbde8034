"""Stand-alone eSpeak NG synthesis worker, run as a script in a fresh process.

libespeak-ng keeps synthesis state in C statics (pitch phase, flutter and filter
memories) that survive ``espeak_Terminate``/``espeak_Initialize`` and even the random
seed, so the same text synthesised twice in one process gives different samples. A
fresh process per speaker makes the audio a pure function of the request: this script
is that process. It uses only the standard library, so it starts in milliseconds
without importing the ``cpc`` package (and hence torch).

Protocol: one JSON request on stdin with keys ``library`` (path of libespeak-ng),
``data_parent`` (the directory holding ``espeak-ng-data``), ``voice`` (e.g.
``"en-us+f2"``), ``rate`` (words per minute), ``pitch`` and ``range`` (0-100),
``seed``, ``sentences`` (list of str), ``target_samples`` and ``extra_samples`` (what the
caller adds to each utterance, e.g. silent pads). It synthesises the
sentences in order until the total length is about ``target_samples`` (at espeak's own
rate, 22050 Hz) and writes one record per utterance to stdout::

    header  <III   sentence index, number of int16 samples, length of the JSON bytes
    audio   int16 little-endian samples
    events  JSON list of [sample, phoneme mnemonic] for every phoneme event

Errors go to stderr with a non-zero exit status.
"""

import ctypes
import json
import struct
import sys
from typing import Any

AUDIO_OUTPUT_SYNCHRONOUS = 2
INITIALIZE_PHONEME_EVENTS = 0x0001
POS_CHARACTER = 1
CHARS_UTF8 = 1
EVENT_LIST_TERMINATED = 0
EVENT_PHONEME = 7
PARAM_RATE, PARAM_PITCH, PARAM_RANGE = 1, 3, 4


class _EventId(ctypes.Union):
    """The ``id`` union of ``espeak_EVENT`` (speak_lib.h, API revision 12)."""

    _fields_ = [
        ("number", ctypes.c_int),
        ("name", ctypes.c_char_p),
        ("string", ctypes.c_char * 8),
    ]


class _Event(ctypes.Structure):
    """``espeak_EVENT``: six 32-bit fields, a pointer, then the 8-byte union (40 bytes)."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),  # milliseconds
        ("sample", ctypes.c_int),  # sample index from the start of the utterance
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


def _load(library: str) -> ctypes.CDLL:
    lib = ctypes.CDLL(library)
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
    lib.espeak_SetSynthCallback.restype = None
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetVoiceByName.restype = ctypes.c_int
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_SetParameter.restype = ctypes.c_int
    lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
    lib.espeak_ng_SetRandSeed.restype = ctypes.c_int
    lib.espeak_Synth.argtypes = [
        ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
        ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
    ]  # fmt: skip
    lib.espeak_Synth.restype = ctypes.c_int
    lib.espeak_Synchronize.argtypes = []
    lib.espeak_Synchronize.restype = ctypes.c_int
    return lib


def main() -> int:
    """Serve one request read from stdin; return the process exit status."""
    request = json.loads(sys.stdin.read())
    lib = _load(request["library"])
    rate = lib.espeak_Initialize(
        AUDIO_OUTPUT_SYNCHRONOUS, 0, request["data_parent"].encode(), INITIALIZE_PHONEME_EVENTS
    )
    if rate != 22050:
        sys.stderr.write(f"espeak_Initialize returned {rate}, expected 22050 Hz\n")
        return 2
    audio: list[bytes] = []
    events: list[tuple[int, str]] = []

    def on_synth(wav: Any, num_samples: int, event_ptr: Any) -> int:
        if wav and num_samples > 0:
            audio.append(ctypes.string_at(wav, 2 * num_samples))
        i = 0
        while event_ptr[i].type != EVENT_LIST_TERMINATED:
            event = event_ptr[i]
            if event.type == EVENT_PHONEME:
                name = bytes(event.id.string).split(b"\0", 1)[0].decode("utf-8", "replace")
                events.append((int(event.sample), name))
            i += 1
        return 0

    callback = _CALLBACK(on_synth)  # keep a reference for the library's lifetime
    lib.espeak_SetSynthCallback(callback)
    if lib.espeak_SetVoiceByName(request["voice"].encode()) != 0:
        sys.stderr.write(f"unknown espeak voice {request['voice']!r}\n")
        return 3
    for param, key in ((PARAM_RATE, "rate"), (PARAM_PITCH, "pitch"), (PARAM_RANGE, "range")):
        lib.espeak_SetParameter(param, int(request[key]), 0)
    out = sys.stdout.buffer
    total = 0
    for index, sentence in enumerate(request["sentences"]):
        # stop where the expected total is closest to the target: once half an average
        # utterance more would pass it (always at least one utterance)
        if index and total + total / (2 * index) >= request["target_samples"]:
            break
        audio.clear()
        events.clear()
        lib.espeak_ng_SetRandSeed(int(request["seed"]) * 100003 + index)
        text = sentence.encode("utf-8") + b"\0"
        status = lib.espeak_Synth(text, len(text), 0, POS_CHARACTER, 0, CHARS_UTF8, None, None)
        lib.espeak_Synchronize()
        if status != 0:
            sys.stderr.write(f"espeak_Synth failed with status {status} on {sentence!r}\n")
            return 4
        samples = b"".join(audio)
        payload = json.dumps(events).encode()
        out.write(struct.pack("<III", index, len(samples) // 2, len(payload)))
        out.write(samples)
        out.write(payload)
        out.flush()
        total += len(samples) // 2 + int(request["extra_samples"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
