"""Models tab: the catalog, what can load here and why not, what is loaded where; load/unload."""

from __future__ import annotations

from typing import Any

import gradio as gr

from mmstudio.errors import UserError
from mmstudio.manager import ModelManager
from mmstudio.ui.common import explain, hub_sentence, user_errors

COLUMNS = ["model", "tasks", "source", "available", "loaded on", "memory (MB)", "license",
           "metrics", "reason"]


def _metrics_text(metrics: dict[str, Any]) -> str:
    flat = [f"{k}={v}" for k, v in metrics.items() if isinstance(v, (int, float, str))]
    return ", ".join(flat[:4])


def catalog_rows(manager: ModelManager) -> list[list[Any]]:
    return [
        [
            row["id"], ", ".join(row["tasks"]), row["source"], "yes" if row["available"] else "no",
            row["placement"] or "-", row["memory_mb"], row["license"],
            _metrics_text(row["metrics"]), row["reason"],
        ]
        for row in manager.status()
    ]


def summary(manager: ModelManager) -> str:
    settings = manager.settings
    devices = ", ".join(d.name for d in manager.devices)
    used = manager.memory_used() / 2**20
    budget = settings.max_memory / 2**20
    hub = manager.catalog.hub.current()
    return (f"**Devices:** {devices} · **Loaded:** {used:.1f} MB of a {budget:,.0f} MB budget "
            f"(`MMSTUDIO_MAX_MEMORY`)\n\n{hub_sentence(hub)} ({hub.detail})")


ADMIN_OFF = ("Loading and unloading from here is off (set `MMSTUDIO_ADMIN=1` where the studio "
             "runs to turn it on): on a shared Space, one visitor must not unload the models "
             "others are running. Models load by themselves when a tab needs them.")


def check_admin(manager: ModelManager) -> None:
    """Load and unload (buttons and API) only when the person who runs the studio allows it."""
    if not manager.settings.admin:
        raise UserError(ADMIN_OFF)


def build(manager: ModelManager) -> None:
    explain(
        "Every model the studio knows. **Embedded** models are small ones trained on the "
        "procedural worlds and shipped with the studio; **hub** models are real checkpoints that "
        "load on demand (best on a GPU). Models load lazily the first time a tab needs them and "
        "are evicted least-recently-used when the memory budget is reached. *available* says "
        "whether the weights can be had here, and *reason* says why not."
    )
    # Callables: filled again at every page load, with what is known then of the hub.
    info = gr.Markdown(lambda: summary(manager))
    table = gr.Dataframe(
        value=lambda: catalog_rows(manager), headers=COLUMNS, interactive=False, wrap=True,
        label="Catalog", column_widths=["18%", "8%", "7%", "6%", "10%", "6%", "8%", "12%", "25%"],
        elem_id="models-table",
    )
    with gr.Row():
        choice = gr.Dropdown(
            [spec.id for spec in manager.catalog], label="Model", scale=3,
            value=next(iter(manager.catalog)).id,
        )
        admin = manager.settings.admin
        load = gr.Button("Load", variant="primary", scale=1, interactive=admin)
        unload = gr.Button("Unload", scale=1, interactive=admin)
        refresh = gr.Button("Refresh", scale=1)
    message = gr.Markdown("" if admin else ADMIN_OFF)

    def refreshed(text: str = "") -> tuple[str, list[list[Any]], str]:
        return summary(manager), catalog_rows(manager), text

    @user_errors
    def on_load(model_id: str, progress: gr.Progress = gr.Progress()) -> tuple:  # noqa: B008
        check_admin(manager)
        if not model_id:
            raise gr.Error("Choose a model first.")
        progress(0.1, desc=f"loading {model_id}")
        model = manager.get(model_id)
        return refreshed(f"Loaded **{model_id}** on {model.device} ({model.dtype}) in "
                         f"{model.load_seconds:.2f} s, {model.nbytes / 2**20:.1f} MB.")

    @user_errors
    def on_unload(model_id: str) -> tuple:
        check_admin(manager)
        done = manager.unload(model_id)  # a model that runs are using: ModelInUse says so
        return refreshed(f"Unloaded **{model_id}**." if done else f"**{model_id}** was not loaded.")

    outputs = [info, table, message]
    # Progress and errors show on the message line only: a failed load must not cover the table
    # (the toast says what happened); afterwards the table and the hub's state are refreshed.
    load.click(on_load, choice, outputs, api_name="models_load", show_progress_on=message
               ).failure(lambda: refreshed()[:2], None, [info, table], api_name=False)
    unload.click(on_unload, choice, outputs, api_name="models_unload", show_progress_on=message)

    def on_refresh() -> tuple:
        manager.catalog.hub.check()  # asked again: the network may have come or gone
        return refreshed()

    refresh.click(on_refresh, None, outputs, api_name="models_status")
