"""`python -m mmstudio models`: the hub's reachability, the catalog, availability and reasons;
`download`: hub weights."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("models", help="list the model catalog and what can load here")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--task", help="only models for this task (tokenize, denoise, ...)")
    parser.set_defaults(func=run_models)

    download = subparsers.add_parser(
        "download", help="fetch a hub model's safetensors into the local Hugging Face cache"
    )
    download.add_argument("model_id")
    download.set_defaults(func=run_download)


def _manager():  # noqa: ANN202 - imported lazily so --help stays fast
    from mmstudio.manager import ModelManager

    return ModelManager()


def run_models(args: argparse.Namespace) -> int:
    manager = _manager()
    hub = manager.catalog.hub.check()  # a few seconds at most; nothing is asked when offline
    rows = manager.status()
    if args.task:
        rows = [r for r in rows if args.task in r["tasks"]]
    if args.json:
        print(json.dumps({"hub": {"state": hub.state, "label": hub.label, "detail": hub.detail},
                          "models": rows}, indent=2))
        return 0
    print(f"Hugging Face Hub: {hub.label} ({hub.detail})\n")
    width = max(len(r["id"]) for r in rows) if rows else 10
    print(f"{'model':<{width}}  {'tasks':<12} {'source':<8} {'available':<9}  reason")
    for row in rows:
        yes = "yes" if row["available"] else "no"
        tasks = ",".join(row["tasks"])
        print(f"{row['id']:<{width}}  {tasks:<12} {row['source']:<8} {yes:<9}  {row['reason']}")
    return 0


def run_download(args: argparse.Namespace) -> int:
    from mmstudio.errors import UserError

    manager = _manager()
    spec = manager.catalog.get(args.model_id)
    if spec.source != "hub":
        raise UserError(f"'{spec.id}' is embedded; its weights ship in assets/")
    if manager.settings.offline:
        raise UserError("offline mode is on (HF_HUB_OFFLINE / MMSTUDIO_OFFLINE); unset it first")
    print(manager.catalog.download(spec.id))  # a failure says plainly why (details: the log)
    return 0
