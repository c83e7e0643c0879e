#!/bin/sh
# ollama-oci entrypoint: put the models in OLLAMA_MODELS, then start the Ollama server.
#
#   OLLAMA_OCI_MODELS      space-separated REF or REF=LOCALNAME entries, e.g.
#                          "registry.example.com/ml/gemma3:270m=gemma3:270m"
#   OLLAMA_OCI_FLAGS       extra flags for `ollama-oci pull` (e.g. "--plain-http",
#                          "--ca-file /certs/ca.pem"); credentials come from
#                          DOCKER_CONFIG / REGISTRY_AUTH_FILE as usual
#   OLLAMA_MODELS          the model store (default: ~/.ollama/models)
#   OLLAMA_OCI_SKIP_SERVE  set to 1 to only pull (an init container)
#
# Arguments, if any, replace the default command `ollama serve`.
# A pull that was cut off resumes on the next start; models already present are not fetched again.
set -eu

: "${OLLAMA_MODELS:=${HOME:-/root}/.ollama/models}"
export OLLAMA_MODELS

pull_one() {
    spec=$1
    ref=${spec%%=*}
    if [ "$ref" != "$spec" ]; then
        # shellcheck disable=SC2086 # OLLAMA_OCI_FLAGS is a list of flags
        ollama-oci pull "$ref" --name "${spec#*=}" -q ${OLLAMA_OCI_FLAGS:-}
    else
        # shellcheck disable=SC2086
        ollama-oci pull "$ref" -q ${OLLAMA_OCI_FLAGS:-}
    fi
}

for spec in ${OLLAMA_OCI_MODELS:-}; do
    echo "ollama-oci: pulling $spec into $OLLAMA_MODELS" >&2
    pull_one "$spec"
done

if [ "${OLLAMA_OCI_SKIP_SERVE:-0}" = 1 ]; then
    exit 0
fi
if [ "$#" -gt 0 ]; then
    exec "$@"
fi
exec ollama serve
