#!/usr/bin/env bash
# Run the device path on emulated Raspberry Pi OS user-spaces (qemu-user) and say what ran where.
#
# For each configuration (Debian suite x arch x interpreter, below) it builds an ARM root file system
# from Debian packages (mmdebstrap), installs this project's wheel with the device dependencies in a
# venv, and under qemu runs the device-side tests, `mnist-edge infer` on PNG files, `mnist-edge bench`
# on a small test set and the shipped models' scores (compared with x86). Prints one table, writes
# OUT/emulated_pi.json. Emulated timings are meaningless: nothing here is a latency.
#
# Needs: root (chroot, mounts), x86_64 Debian with `apt-get install qemu-user-static mmdebstrap`,
# binfmt_misc (registered here if missing), the Debian mirror and PyPI, and $MNIST_EDGE_DATA.
# Exit status 1 only if a configuration expected to work fails; known limits are reported, not fatal.
set -uo pipefail

usage() {
    cat <<EOF
usage: $0 [--ci] [--only NAME]... [--cache DIR] [--out DIR]
  --ci          cheapest check: $CI_CONFIG, install + \`mnist-edge infer\` on 4 PNGs
  --only NAME   run only this configuration (repeatable); names: ${CONFIGS[*]%%|*}
  --cache DIR   root file systems, venvs, pip cache [\$MNIST_EDGE_PI_CACHE or ~/.cache/mnist-edge-pi]
  --out DIR     logs, reports, emulated_pi.json [out/emulated-pi in the repo]
env: X86_PYTHON (workstation venv, TensorFlow for the test models) [.venv/bin/python],
     X86_EDGE_PYTHON (tflite-runtime venv, x86 reference scores) [.venv-edge/bin/python],
     MNIST_EDGE_DATA (required), DEBIAN_MIRROR [http://deb.debian.org/debian],
     PYTEST_ARGS (tests run under emulation) [a core selection of tests/test_edge_runtime.py]
EOF
}

# name|Debian suite|arch|QEMU_CPU|pip requirements besides the wheel (WHEEL) and pytest|expected
# Bookworm = Pi OS 12 (Python 3.11), Trixie = Pi OS 13 (Python 3.13); arm64 = 64-bit, armhf = 32-bit.
# cortex-a72 is the Raspberry Pi 4; qemu-arm (32-bit) has no A72, cortex-a15 has the same ARMv7 NEON/VFPv4.
CONFIGS=(
    "bookworm-arm64-litert|bookworm|arm64|cortex-a72|WHEEL[edge] ai-edge-litert==2.3.0|ok"
    "bookworm-arm64-tflite|bookworm|arm64|cortex-a72|numpy<2 tflite-runtime==2.14.0 WHEEL|ok"
    "bookworm-armhf-tflite|bookworm|armhf|cortex-a15|tflite-runtime==2.14.0 WHEEL|ok"
    "trixie-arm64-litert|trixie|arm64|cortex-a72|WHEEL[edge]|ok"
    "trixie-armhf-tflite|trixie|armhf|cortex-a15|tflite-runtime==2.14.0 WHEEL|unavailable"
)
CI_CONFIG=bookworm-arm64-litert
# Debian packages of every root file system; armhf also takes numpy and Pillow from Debian (PyPI
# has no armv7 wheels of them; Pi OS users get the same packages with apt).
DEBS="python3,python3-venv,coreutils,dash,libstdc++6"
DEBS_ARMHF="python3-numpy,python3-pil"
# Device tests run under emulation: the Classifier on real models with each interpreter. Emulated
# Python is 20-200x slower (more on a busy machine), so by default a core selection; all device-side
# tests: PYTEST_ARGS="-m 'not slow' tests/test_edge_runtime.py tests/test_images.py tests/test_infer_cli.py
# tests/test_metadata.py tests/test_metrics.py tests/test_bench.py" (tens of minutes each).
PYTEST_ARGS=${PYTEST_ARGS:-"tests/test_edge_runtime.py -k 'scores_and_predictions or sees_digits or every_input_layout or runtime_and_xnnpack or embedded_metadata or bad_model_files or never_imports_tensorflow'"}
IMAGES=4          # PNG files for infer
SCORE_IMAGES=200  # test images whose scores are compared with x86 (also the bench test set)

REPO=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${MNIST_EDGE_PI_CACHE:-$HOME/.cache/mnist-edge-pi}
OUT=$REPO/out/emulated-pi
X86_PYTHON=${X86_PYTHON:-$REPO/.venv/bin/python}
X86_EDGE_PYTHON=${X86_EDGE_PYTHON:-$REPO/.venv-edge/bin/python}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
CI=0
ONLY=()
while [ $# -gt 0 ]; do
    case $1 in
        --ci) CI=1 ;;
        --only) ONLY+=("$2"); shift ;;
        --cache) CACHE=$2; shift ;;
        --out) OUT=$2; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "Error: unknown argument $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
[ $CI = 1 ] && ONLY=("$CI_CONFIG")
for name in "${ONLY[@]}"; do
    [[ " ${CONFIGS[*]%%|*} " == *" $name "* ]] || { echo "Error: no configuration $name" >&2; usage >&2; exit 2; }
done

die() { echo "Error: $*" >&2; exit 2; }
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

check_host() {
    [ "$(id -u)" = 0 ] || die "needs root (chroot and mounts); run with sudo"
    command -v mmdebstrap >/dev/null && command -v qemu-aarch64-static >/dev/null ||
        die "install the emulator and the root-fs builder: apt-get install qemu-user-static mmdebstrap"
    [ -n "${MNIST_EDGE_DATA:-}" ] && [ -d "$MNIST_EDGE_DATA" ] || die "set MNIST_EDGE_DATA to the MNIST folder"
    [ -x "$X86_PYTHON" ] || die "no workstation python at $X86_PYTHON (bash .ci/run builds it; or set X86_PYTHON)"
    [ -f /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc ||
        die "binfmt_misc is not available (needed so emulated programs can start other ARM programs)"
    local arch
    for arch in aarch64 arm; do  # Debian's registration, with F: the emulator works inside a chroot
        [ -e /proc/sys/fs/binfmt_misc/qemu-$arch ] || cat /usr/lib/binfmt.d/qemu-$arch.conf > /proc/sys/fs/binfmt_misc/register ||
            die "cannot register qemu-$arch with binfmt_misc"
    done
}

# A Raspberry Pi 4's /proc/cpuinfo. qemu 7.2 (Debian 12) shows ARM programs the host's x86 file;
# the cpuinfo library inside ai-edge-litert 2.x then crashes (see README, Raspberry Pi). qemu >= 8
# emulates the file itself. The `stock-qemu` step runs without this overlay to keep checking that.
cpuinfo_file() {
    local arch=$1 file=$CACHE/cpuinfo-pi4-$1.txt n
    if [ "$arch" = arm64 ]; then
        for n in 0 1 2 3; do printf 'processor\t: %s\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\nCPU revision\t: 3\n\n' $n; done > "$file"
    else
        for n in 0 1 2 3; do printf 'processor\t: %s\nmodel name\t: ARMv7 Processor rev 3 (v7l)\nBogoMIPS\t: 108.00\nFeatures\t: half thumb fastmult vfp edsp neon vfpv3 tls vfpv4 idiva idivt vfpd32 lpae evtstrm crc32\nCPU implementer\t: 0x41\nCPU architecture: 7\nCPU variant\t: 0x0\nCPU part\t: 0xd08\nCPU revision\t: 3\n\n' $n; done > "$file"
    fi
    printf 'Hardware\t: BCM2835\nRevision\t: c03111\nModel\t\t: Raspberry Pi 4 Model B Rev 1.1\n' >> "$file"
    echo "$file"
}

# The root file system of one Debian suite and architecture, built once and cached.
rootfs() {
    local suite=$1 arch=$2 dir=$CACHE/rootfs-$1-$2 debs=$DEBS
    [ "$arch" = armhf ] && debs=$debs,$DEBS_ARMHF
    if [ ! -e "$dir/.complete" ]; then
        log "building $suite $arch root file system ($debs)"
        rm -rf "$dir.tmp" && mmdebstrap -q --variant=extract --architectures="$arch" --include="$debs" \
            "$suite" "$dir.tmp" "$MIRROR" >&2 || return 1
        rm -rf "$dir" && mv "$dir.tmp" "$dir" && touch "$dir/.complete"
    fi
    # What maintainer scripts would do: merged-/usr links (Trixie), the BLAS/LAPACK alternatives (numpy)
    local d lib
    for d in bin lib sbin; do [ -e "$dir/$d" ] || ln -s "usr/$d" "$dir/$d"; done
    for lib in "$dir"/usr/lib/*/blas/libblas.so.3 "$dir"/usr/lib/*/lapack/liblapack.so.3; do
        [ -e "$lib" ] && ln -sf "${lib#"${lib%/*/*}"/}" "${lib%/*/*}/${lib##*/}"
    done
    cp /etc/resolv.conf "$dir/etc/resolv.conf"  # pip reaches PyPI from inside
    mkdir -p "$dir/etc/ssl/certs" "$dir/io" "$dir/mnist" "$dir/pipcache"
    cp /etc/ssl/certs/ca-certificates.crt "$dir/etc/ssl/certs/"  # extract mode runs no maintainer scripts
    echo "$dir"
}

# run_in ROOTFS ARCH CPU STOCK CMD...: CMD in the chroot, in a private mount namespace (nothing
# stays mounted), with the run folder at /io, MNIST at /mnist and the shared pip cache.
run_in() {
    local root=$1 arch=$2 cpu=$3 stock=$4; shift 4
    local fake=; [ "$stock" = 1 ] || fake=$(cpuinfo_file "$arch")
    local envs=(PATH=/usr/bin:/bin HOME=/root LANG=C.UTF-8 PIP_CACHE_DIR=/pipcache PIP_DISABLE_PIP_VERSION_CHECK=1
                PIP_CERT=/etc/ssl/certs/ca-certificates.crt)
    local qemu=()  # read by each emulator start: the first exec in the chroot and every later one
    [ "$stock" = 1 ] || qemu=(QEMU_CPU="$cpu")
    unshare --mount --fork -- env "${qemu[@]}" sh -c '
        r=$1 fake=$2; shift 2
        mount --make-rprivate / && mount --rbind /dev "$r/dev" && mkdir -p "$r/proc" "$r/sys" &&
        mount -t proc proc "$r/proc" && mount --rbind /sys "$r/sys" &&
        mount --bind "$IO" "$r/io" && mount --bind -o ro "$MNIST_EDGE_DATA" "$r/mnist" &&
        mount --bind "$CACHE/pip" "$r/pipcache" &&
        { [ -z "$fake" ] || mount --bind "$fake" "$r/proc/cpuinfo"; } &&
        exec chroot "$r" /usr/bin/env -i "$@"' sh "$root" "$fake" "${envs[@]}" "${qemu[@]}" "$@"
}

# step NAME EXPECT CMD...: run, time and record one step in $RUN/steps.tsv; the log is $RUN/NAME.log.
step() {
    local name=$1 expect=$2 start rc status note=; shift 2
    start=$(date +%s)
    "$@" > "$RUN/$name.log" 2>&1; rc=$?
    case "$rc:$expect" in
        0:ok) status=ok ;;
        0:*) status="ok (expected $expect)" ;;
        *:ok) status=FAIL ;;
        *) status=$expect ;;
    esac
    [ $rc -gt 128 ] && [ $rc -lt 160 ] && note="signal $((rc - 128))"
    [ "$name" = tests ] && note=$(grep -Eo '[0-9]+ (passed|failed|skipped|errors?)' "$RUN/$name.log" | paste -sd, -)
    printf '%s\t%s\t%s\t%s\n' "$name" "$status" "$(( $(date +%s) - start ))" "$note" >> "$RUN/steps.tsv"
    log "$CONFIG_NAME: $name: $status $note"
    [ $rc = 0 ]
}

# Everything the emulated runs read, prepared once on x86: the wheel, a small test set, PNGs,
# the device tests, test models, and the x86 reference scores.
prepare_inputs() {
    local x86=$OUT/x86 bin
    bin=$(dirname "$X86_PYTHON")
    rm -rf "$x86" && mkdir -p "$x86/repo"
    log "x86: wheel, test set, images, test models, reference scores"
    "$X86_PYTHON" -m pip wheel -q --no-deps "$REPO" -w "$x86/dist" >&2 || die "cannot build the wheel"
    WHEEL=$(ls "$x86"/dist/mnist_edge-*.whl) && WHEEL=${WHEEL##*/}
    export PYTHONPATH=$REPO
    "$bin/mnist-edge" data "$x86/data" --train 1 --val 0 --test $SCORE_IMAGES --seed 1 > "$x86/data.log" 2>&1 ||
        die "cannot compose the test set (see $x86/data.log)"
    "$X86_PYTHON" -m benchmarks.emulated_pi images "$x86/data/test.npz" "$x86/images" --count $IMAGES || die "cannot write PNGs"
    "$X86_PYTHON" -c "from edge_runtime.classifier import default_model_path as p; print(p('float32')); print(p('int8'))" \
        | xargs -I{} cp {} "$x86/" || die "no shipped models"
    "$bin/mnist-edge" infer --json --threads 1 "$x86/images" > "$x86/infer.jsonl" || die "x86 infer failed"
    [ $CI = 1 ] && return
    cp -r "$REPO/tests" "$REPO/pyproject.toml" "$x86/repo/"  # tests only: the installed wheel is what runs
    "$X86_PYTHON" -c "import tensorflow" 2>/dev/null &&
        { "$X86_PYTHON" "$REPO/tests/models_for_tests.py" "$x86/test-models" > "$x86/test-models.log" 2>&1 ||
          die "cannot build the test models (see $x86/test-models.log)"; }
    "$X86_PYTHON" -m benchmarks.emulated_pi scores "$x86/ai_edge_litert.json" "$x86"/model_*.tflite \
        --data "$x86/data/test.npz" --runtime ai_edge_litert || log "no x86 ai-edge-litert reference"
    [ -x "$X86_EDGE_PYTHON" ] && "$X86_EDGE_PYTHON" -m benchmarks.emulated_pi scores "$x86/tflite_runtime.json" \
        "$x86"/model_*.tflite --data "$x86/data/test.npz" --runtime tflite_runtime || log "no x86 tflite-runtime reference"
}

# The venv of one configuration, rebuilt only when its requirements change; the wheel always.
install() {
    local venv=/venvs/$CONFIG_NAME reqs=${REQS//WHEEL//io/x86/dist/$WHEEL} site=
    [ "$ARCH" = armhf ] && site=--system-site-packages
    # shellcheck disable=SC2016
    in_pi sh -ec '
        set -f; venv=$1 reqs=$2 site=$3
        if [ "$(cat $venv/.reqs 2>/dev/null)" != "$reqs" ]; then
            rm -rf $venv && python3 -m venv $site $venv
            $venv/bin/pip install -q $reqs pytest
            echo "$reqs" > $venv/.reqs
        fi
        $venv/bin/pip install -q --no-deps --force-reinstall /io/x86/dist/'"$WHEEL"'
        $venv/bin/pip list' sh "$venv" "$reqs" "$site"
}

in_pi() { run_in "$ROOT" "$ARCH" "$CPU" 0 "$@"; }

run_config() {
    local line=$1 expect py
    IFS='|' read -r CONFIG_NAME SUITE ARCH CPU REQS expect <<< "$line"
    RUN=$OUT/$CONFIG_NAME && rm -rf "$RUN" && mkdir -p "$RUN"
    py=/venvs/$CONFIG_NAME/bin
    printf '{"name": "%s", "pi_os": "%s", "arch": "%s", "qemu": "%s", "qemu_cpu": "%s", "requirements": "%s", "expected": "%s"}\n' \
        "$CONFIG_NAME" "$SUITE" "$ARCH" "$(qemu-aarch64-static --version | head -1)" "$CPU" "$REQS" "$expect" > "$RUN/config.json"
    ROOT=$(rootfs "$SUITE" "$ARCH") || { printf 'install\tFAIL\t0\tno root file system\n' >> "$RUN/steps.tsv"; return; }
    step install "$expect" install || return
    step infer ok in_pi "$py/mnist-edge" infer --json --threads 1 /io/x86/images
    [ $CI = 1 ] && return
    step tests ok in_pi sh -c "cd /io/x86/repo && MNIST_EDGE_EDGE_ONLY=1 MNIST_EDGE_DATA=/mnist \
        ${TEST_MODELS:+MNIST_EDGE_TEST_MODELS=/io/x86/test-models} $py/python -m pytest -q -p no:cacheprovider $PYTEST_ARGS"
    step bench ok in_pi "$py/mnist-edge" bench /io/x86/model_float32.tflite /io/x86/model_int8.tflite \
        --data /io/x86/data/test.npz --runs 10 --warmup 1 --rounds 1 --threads 1 --batch 1,8 --no-memory --out "/io/$CONFIG_NAME/bench"
    step scores ok in_pi "$py/python" -m benchmarks.emulated_pi scores "/io/$CONFIG_NAME/scores.json" \
        /io/x86/model_float32.tflite /io/x86/model_int8.tflite --data /io/x86/data/test.npz --count $SCORE_IMAGES
    if [ "$ARCH" = arm64 ] && [[ $REQS == *edge* ]]; then  # the crash the Pi-4 cpuinfo overlay avoids
        step stock-qemu known-qemu-crash run_in "$ROOT" "$ARCH" "$CPU" 1 "$py/python" -m benchmarks.emulated_pi scores \
            /tmp/stock.json /io/x86/model_int8.tflite --data /io/x86/data/test.npz --count 1
    fi
}

check_host
mkdir -p "$OUT" "$CACHE/pip"
OUT=$(cd "$OUT" && pwd) CACHE=$(cd "$CACHE" && pwd)
export IO=$OUT CACHE MNIST_EDGE_DATA
START=$(date +%s)
prepare_inputs
[ -d "$OUT/x86/test-models" ] && TEST_MODELS=1 || TEST_MODELS=
for line in "${CONFIGS[@]}"; do
    name=${line%%|*}
    [ ${#ONLY[@]} = 0 ] || [[ " ${ONLY[*]} " == *" $name "* ]] || continue
    run_config "$line"
done
log "done in $(( $(date +%s) - START )) s (emulated: no timing here is a latency)"
python3 "$REPO/benchmarks/emulated_pi.py" summary "$OUT" --x86 "$OUT/x86" --json "$OUT/emulated_pi.json"
