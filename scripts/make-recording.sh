#!/usr/bin/env bash
# Synthesize assets/speech.wav: four English sentences separated by pauses,
# 16 kHz mono 16-bit PCM, with low-level white noise so "silence" is not
# digital zero. Also writes assets/speech.segments.json (ground-truth speech
# start/end per sentence, derived from the exact sample counts of the pieces).
#
# Run by hand (needs root or sudo for apt-get if espeak-ng/sox are missing):
#   scripts/make-recording.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT_WAV="$ROOT/assets/speech.wav"
OUT_JSON="$ROOT/assets/speech.segments.json"
RATE=16000
VOICE="en-us"
WPM=150
LEAD=0.5          # silence before the first sentence (s)
TAIL=0.5          # silence after the last sentence (s)
PAUSES=(2.0 1.5 2.5)   # silences between sentences (s)
NOISE_AMP=0.0055  # whitenoise "vol": gives ~ -50 dBFS RMS noise floor
SENTENCES=(
  "The quick brown fox jumps over the lazy dog."
  "Oxinfer runs neural networks directly inside Node."
  "Please leave a message after the tone."
  "Thank you, and have a wonderful day."
)

# --- tools ---------------------------------------------------------------
if ! command -v espeak-ng >/dev/null || ! command -v sox >/dev/null || ! command -v soxi >/dev/null; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq espeak-ng sox >/dev/null
fi

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

# sox global options: -R = repeatable (fixed RNG seed for noise), -D = no
# dither, -q = quiet. Together they make the output byte-for-byte reproducible
# for a given sox/espeak-ng version.
SOX=(sox -R -D -q)
FMT=(-r "$RATE" -c 1 -b 16 -e signed-integer)

# (format options go before -n too, so the null input already runs at 16 kHz
# and sample counts are exact; otherwise it defaults to 48 kHz and is resampled)
silence() { "${SOX[@]}" "${FMT[@]}" -n "${FMT[@]}" "$2" trim 0 "$1"; }
samples() { soxi -s "$1"; }

# --- pieces --------------------------------------------------------------
pieces=()
silence "$LEAD" "$TMP/p_lead.wav"; pieces+=("$TMP/p_lead.wav")
for i in "${!SENTENCES[@]}"; do
  espeak-ng -v "$VOICE" -s "$WPM" -w "$TMP/raw_$i.wav" "${SENTENCES[$i]}"
  # Resample to 16 kHz, trim espeak's own leading/trailing silence so the
  # segment boundaries below are tight, and normalise peaks to -3 dBFS.
  "${SOX[@]}" "$TMP/raw_$i.wav" "${FMT[@]}" "$TMP/s_$i.wav" \
    silence 1 0.005 0.1% reverse silence 1 0.005 0.1% reverse norm -3
  pieces+=("$TMP/s_$i.wav")
  if [ "$i" -lt "${#PAUSES[@]}" ]; then
    silence "${PAUSES[$i]}" "$TMP/p_$i.wav"; pieces+=("$TMP/p_$i.wav")
  fi
done
silence "$TAIL" "$TMP/p_tail.wav"; pieces+=("$TMP/p_tail.wav")

"${SOX[@]}" "${pieces[@]}" "$TMP/clean.wav"
total=$(samples "$TMP/clean.wav")

# Mix in white noise (-m with explicit -v 1 so sox does not halve each input).
"${SOX[@]}" "${FMT[@]}" -n "${FMT[@]}" "$TMP/noise.wav" synth "${total}s" whitenoise vol "$NOISE_AMP"
mkdir -p "$(dirname "$OUT_WAV")"
"${SOX[@]}" -m -v 1 "$TMP/clean.wav" -v 1 "$TMP/noise.wav" "${FMT[@]}" "$OUT_WAV"

# --- ground truth --------------------------------------------------------
# Walk the pieces in order, accumulating exact sample counts.
{
  printf '{\n  "file": "speech.wav",\n  "sample_rate": %d,\n  "duration_s": %s,\n  "voice": "espeak-ng %s, %d wpm",\n  "segments": [\n' \
    "$RATE" "$(awk -v n="$total" -v r="$RATE" 'BEGIN{printf "%.4f", n/r}')" "$VOICE" "$WPM"
  pos=0; k=0
  for p in "${pieces[@]}"; do
    n=$(samples "$p")
    case "$(basename "$p")" in
      s_*)
        text="${SENTENCES[$k]}"
        [ "$k" -gt 0 ] && printf ',\n'
        awk -v a="$pos" -v b="$((pos + n))" -v r="$RATE" -v t="$text" \
          'BEGIN{printf "    {\"start\": %.4f, \"end\": %.4f, \"start_sample\": %d, \"end_sample\": %d, \"text\": \"%s\"}", a/r, b/r, a, b, t}'
        k=$((k + 1));;
    esac
    pos=$((pos + n))
  done
  printf '\n  ]\n}\n'
} > "$OUT_JSON"

echo "wrote $OUT_WAV ($(stat -c %s "$OUT_WAV") bytes, $(soxi -d "$OUT_WAV")) and $OUT_JSON"
