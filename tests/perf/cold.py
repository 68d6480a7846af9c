"""`make perf`'s cold start through the shaped upstream link (issue 17; docs/performance.md).

The bed's registry and model hub sit behind one link shaped with tc TBF (tests/simfleet/upstream.py).
For each N, three runs from no image, no model and no container on gpu01..gpuN:

  cold-ours      site.yml, stages COLD_STAGES, the model from the bed's hub: the image and the
                 model cross the link once, then spread host to host
  cold-floor     every host docker-loads the image from an archive already on the machine and
                 copies the model from a local directory, all N at once: the local cost at N
  cold-baseline  baseline_shell.yml with perf_baseline_download: every host pulls the image and
                 downloads the model itself through the link

The bytes that crossed the link during each run come from the upstream veth's counters, and are
compared with one copy of the artifacts: the bytes the registry serves for one pull of the image
(manifest + config + layers) plus the model's bytes. The pure helpers here are unit tested
(tests/unit/test_perf_cold.py); the runs need the bed.
"""

import json
import urllib.request

COLD_STAGES = ["preflight", "container", "model", "packages", "server"]
PHASES = ("cold-ours", "cold-floor", "cold-baseline")
# Measured on the 2-core development machine (docs/performance.md, "Cold start"): the local floor
# at N=1 took 31 to 35 s (docker load 24 to 26 s, model copy 5 to 11 s) and one copy is 729 MB
# (image 192 MB as served, model 537 MB): at 80 Mbit/s one copy took 73 s, only 2.07x the floor
# of that run, so 64 Mbit/s (91 s, about 2.6x) leaves room for the floor's spread.
DEFAULT_RATE = "64mbit"
DEFAULT_HUB_SIZE = "512MiB"
COPY_FACTOR = 2.0      # one copy through the link takes at least this many times the local load at N=1
BYTES_LIMIT = 1.1      # ours: upstream bytes at most this many copies, at every N
SCALE_LIMIT = 1.5      # ours at N=16 at most this times (ours at N=1 + the local floor at N=16)
SPEEDUP = 2.0          # ours at least this many times faster than the baseline at N=16
MANIFEST_TYPES = ("application/vnd.docker.distribution.manifest.v2+json, "
                  "application/vnd.oci.image.manifest.v1+json")


def skipped_phases(skip):
    """PERF_SKIP's names, with `cold` standing for the three cold phases."""
    return set(skip) | (set(PHASES) if "cold" in skip else set())


def split_image(image):
    """`registry:port/repo/name:tag` -> (registry, repository, tag)."""
    registry, _slash, rest = image.partition("/")
    repository, _colon, tag = rest.rpartition(":")
    if not registry or not repository or not tag:
        raise ValueError("image %r: expected registry/repository:tag" % image)
    return registry, repository, tag


def pull_bytes(manifest, manifest_size):
    """Bytes the registry serves for one pull of a single-platform image: the manifest itself, the
    config blob and every layer blob (HTTP headers not counted)."""
    layers = manifest.get("layers")
    if not isinstance(layers, list) or "config" not in manifest:
        raise ValueError("not a single-platform image manifest (no config or layers): %s"
                         % manifest.get("mediaType"))
    return manifest_size + int(manifest["config"]["size"]) + sum(int(layer["size"]) for layer in layers)


def registry_pull_bytes(image, timeout=30):
    """The bytes one pull of `image` fetches from its (plain HTTP) registry."""
    registry, repository, tag = split_image(image)
    request = urllib.request.Request("http://%s/v2/%s/manifests/%s" % (registry, repository, tag),
                                     headers={"Accept": MANIFEST_TYPES})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        raw = response.read()
    return pull_bytes(json.loads(raw), len(raw))


def rate_bits(rate):
    """`80mbit` -> 80e6 (tc's units: SI, bits per second)."""
    text = str(rate).strip().lower()
    for unit, scale in (("gbit", 10 ** 9), ("mbit", 10 ** 6), ("kbit", 10 ** 3), ("bit", 1)):
        if text.endswith(unit):
            return float(text[:-len(unit)]) * scale
    raise ValueError("rate %r: expected a number with bit, kbit, mbit or gbit" % rate)


def ratio(value, base):
    return None if value is None or not base else round(value / base, 3)


def _get(run, side, key):
    return ((run or {}).get("cold") or {}).get(side, {}).get(key)


def cold_targets(runs, copy):
    """The cold start's targets from one run's figures.

    runs: [{"n": N, "cold": {"ours": {"s", "upstream_bytes"}, "baseline": {...}, "floor": {"s"}}}];
    copy: {"bytes": one copy, "seconds_at_rate": one copy through the shaped link}.
    Returns [{"target", "status": pass|FAIL|n/a, "detail"}], the biggest N standing for 16 when
    16 was not measured (said in the detail).
    """
    runs = sorted((r for r in runs if r.get("cold")), key=lambda r: r["n"])
    by_n = {r["n"]: r for r in runs}
    one = copy.get("bytes")
    out = []

    def add(name, ok, detail):
        out.append({"target": "cold start: " + name, "status": "n/a" if ok is None else ("pass" if ok else "FAIL"),
                    "detail": detail})

    floor1 = _get(by_n.get(1), "floor", "s")
    at_rate = copy.get("seconds_at_rate")
    add("one copy through the link takes at least %gx the local floor at N=1" % COPY_FACTOR,
        None if not (floor1 and at_rate) else at_rate >= COPY_FACTOR * floor1,
        "one copy %s bytes at %s: %s s; local floor N=1 %s s; %sx" % (
            one, copy.get("rate"), at_rate, floor1, ratio(at_rate, floor1)))

    ours = [(r["n"], _get(r, "ours", "upstream_bytes")) for r in runs]
    measured = [(n, b) for n, b in ours if b is not None]
    within = len(measured) == len(ours) and all(b <= BYTES_LIMIT * one for _n, b in measured) if one else None
    add("our upstream bytes at most %gx one copy at every N" % BYTES_LIMIT,
        None if not (one and measured) else within,
        "; ".join("N=%s %s bytes = %sx" % (n, b, ratio(b, one)) for n, b in ours))

    base = [(r["n"], _get(r, "baseline", "upstream_bytes")) for r in runs]
    known = [(n, b) for n, b in base if b is not None]
    grows = len(known) == len(base) and all(later > earlier for (_a, earlier), (_b, later) in zip(known, known[1:]))
    add("the baseline's upstream bytes grow with N", None if len(known) < 2 else grows,
        "; ".join("N=%s %s bytes = %sx one copy" % (n, b, ratio(b, one)) for n, b in base))

    big = by_n.get(16) or (runs[-1] if runs else None)
    n_big = big["n"] if big else None
    note = "" if n_big == 16 else " (N=16 was not measured in this run)"
    ours_big, ours1, floor_big = _get(big, "ours", "s"), _get(by_n.get(1), "ours", "s"), _get(big, "floor", "s")
    bound = None if ours1 is None or floor_big is None else SCALE_LIMIT * (ours1 + floor_big)
    add("ours at N=%s at most %gx (ours at N=1 + local floor at N=%s)" % (n_big, SCALE_LIMIT, n_big),
        None if ours_big is None or bound is None else ours_big <= bound,
        "ours N=%s %s s; N=1 %s s + floor %s s; bound %s s; %sx of the sum%s" % (
            n_big, ours_big, ours1, floor_big, None if bound is None else round(bound, 1),
            ratio(ours_big, None if bound is None else bound / SCALE_LIMIT), note))

    base_big = _get(big, "baseline", "s")
    add("ours at least %gx faster than the baseline at N=%s" % (SPEEDUP, n_big),
        None if not (ours_big and base_big) else base_big >= SPEEDUP * ours_big,
        "baseline %s s / ours %s s = %sx%s" % (base_big, ours_big, ratio(base_big, ours_big), note))
    return out


def markdown(runs, copy):
    """The cold start's table for perf/results.md."""
    def fmt(value):
        return "–" if value is None else str(value)

    def mb(value):
        return None if value is None else round(value / 1e6, 1)

    one = copy.get("bytes")
    lines = ["## Cold start through the shaped upstream link", "",
             "Upstream link %s; one copy = %s MB (image as served for one pull %s MB + model %s MB), "
             "%s s through the link." % (copy.get("rate"), fmt(mb(one)), fmt(mb(copy.get("image_bytes"))),
                                         fmt(mb(copy.get("model_bytes"))), fmt(copy.get("seconds_at_rate"))), "",
             "| N | ours upstream MB | ours × copy | baseline upstream MB | baseline × copy | ours cold s "
             "| baseline cold s | local floor s | floor: load s / model copy s (slowest host) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for run in sorted((r for r in runs if r.get("cold")), key=lambda r: r["n"]):
        ours_b, base_b = _get(run, "ours", "upstream_bytes"), _get(run, "baseline", "upstream_bytes")
        lines.append("| %s |" % " | ".join(fmt(x) for x in (
            run["n"], mb(ours_b), ratio(ours_b, one), mb(base_b), ratio(base_b, one), _get(run, "ours", "s"),
            _get(run, "baseline", "s"), _get(run, "floor", "s"),
            "%s / %s" % (fmt(_get(run, "floor", "load_max_s")), fmt(_get(run, "floor", "copy_max_s"))))))
    return lines
