"""``python -m ollama_oci.cli``: the same program as the ``ollama-oci`` command."""

from . import console_main

console_main()
