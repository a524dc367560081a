"""Spaces entry point: build the studio and serve it (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT)."""

import os

from mmstudio.devices import limit_malloc_arenas, trim_memory_every, use_cpu_threads
from mmstudio.manager import ModelManager
from mmstudio.ui import LAUNCH_KWARGS, build_app

if __name__ == "__main__":
    limit_malloc_arenas()  # before the thread pool starts: memory stays flat (devices.py)
    trim_memory_every(10.0)  # free heap pages go back to the system (devices.py)
    manager = ModelManager()
    use_cpu_threads(manager.settings.cpu_threads)  # one core left to streaming (config.py)
    app = build_app(manager)
    app.queue(default_concurrency_limit=4).launch(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
        **LAUNCH_KWARGS,
    )
