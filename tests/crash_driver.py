"""Run a pack and SIGKILL ourselves at the N-th filesystem operation (test helper).

usage: python crash_driver.py N GGUF MODELS_DIR OCI_DIR LINK_MODE
Exit 0 if the pack finished before operation N was reached.
"""

import os
import signal
import sys

n_kill = int(sys.argv[1])
count = 0


def wrap(mod, name):
    real = getattr(mod, name)

    def f(*a, **kw):
        global count
        count += 1
        if count == n_kill:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(*a, **kw)
    setattr(mod, name, f)


for name in ("open", "write", "pwrite", "copy_file_range", "fsync", "replace", "rename", "link", "unlink", "makedirs", "mkdir", "utime",
             "chmod", "fchmod"):
    wrap(os, name)

from ollama_oci import OCILayout, OllamaStore, Recipe, pack  # noqa: E402

pack(Recipe(files=[sys.argv[2]], system="crash test", params={"temperature": 0.5}), "crash:test",
     [OllamaStore(sys.argv[3]), OCILayout(sys.argv[4])], link_mode=sys.argv[5])
print("ops", count)
