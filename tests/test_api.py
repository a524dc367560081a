"""The studio is scriptable: named endpoints answer through gradio_client."""

from __future__ import annotations

from gradio_client import Client

REQUIRED_ENDPOINTS = {"/models_status", "/models_load", "/models_unload"}


def test_named_endpoints_exist_and_models_answers(app_server: str) -> None:
    client = Client(app_server, verbose=False)
    api = client.view_api(print_info=False, return_format="dict")
    names = set(api["named_endpoints"])
    assert REQUIRED_ENDPOINTS <= names, names
    summary, table, _message = client.predict(api_name="/models_status")
    assert "Devices:" in summary and "cpu" in summary
    ids = [row[0] for row in table["data"]]
    assert "shapes-vqvae" in ids and "facebook/DiT-XL-2-256" in ids


def test_bad_request_gets_a_message_and_the_server_keeps_serving(app_server: str) -> None:
    client = Client(app_server, verbose=False)
    for model_id, expected in [
        ("no-such-model", "not in the list of choices"),
        # the test server runs as a public Space would: loading from the browser is off
        ("facebook/DiT-XL-2-256", "set `MMSTUDIO_ADMIN=1` where the studio runs"),
    ]:
        try:
            client.predict(model_id, api_name="/models_load")
        except Exception as exc:  # gradio_client raises AppError carrying the gr.Error message
            assert expected in str(exc), str(exc)
        else:
            raise AssertionError(f"loading {model_id} must fail with a message")
    summary, _table, _message = client.predict(api_name="/models_status")
    assert "Devices:" in summary
