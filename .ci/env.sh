# Sourced by .ci/demo and .ci/run: the Python to use and where MNIST is.
export PIP_DISABLE_PIP_VERSION_CHECK=1
# PYTHON=python3.12 bash .ci/demo picks the interpreter; the workstation side needs TensorFlow's 3.10-3.13.
python="${PYTHON:-python3}"
if ! "$python" -c 'import sys; sys.exit(not (3, 10) <= sys.version_info[:2] <= (3, 13))'; then
    echo "Error: the workstation venv needs Python 3.10-3.13 (TensorFlow's range); $python is" \
         "$("$python" -V 2>&1). Name another: PYTHON=python3.12 bash $0" >&2
    exit 1
fi
# MNIST: CI keeps a copy in ../shared/data/mnist. Without one (and without MNIST_EDGE_DATA set), the
# project's own lookup runs: Keras' cache ~/.keras/datasets/mnist.npz, then Keras' download.
shared="$(cd .. && pwd)/shared/data/mnist"
if [ -z "${MNIST_EDGE_DATA:-}" ] && [ -d "$shared" ]; then
    export MNIST_EDGE_DATA="$shared"
fi
