"""The job runtime: the files every job, notebook and TensorBoard container gets at /kqi/runtime."""
import os

HERE = os.path.dirname(os.path.abspath(__file__))

#: name in /kqi/runtime -> file: the start script, the runtime and the layout module it imports
RUNTIME_FILES = {
    "start.sh": os.path.join(HERE, "start.sh"),
    "kqi_runtime.py": os.path.join(HERE, "kqi_runtime.py"),
    "layout.py": os.path.join(os.path.dirname(HERE), "domain", "layout.py"),
}
