"""moto's service models read with one loader (local/moto_patches.py:shared_model_loader)."""

from __future__ import annotations

from moto.core import loaders, utils

from miniwdl_serverless.local import moto_patches


def test_one_loader_serves_every_model_read_and_the_undo_puts_moto_back() -> None:
    original = utils.create_loader
    undo = moto_patches.shared_model_loader()
    try:
        loader = utils.create_loader()
        assert isinstance(loader, loaders.Loader)  # moto's, with its model extras
        assert utils.create_loader() is loader
        model = utils._load_service_model("logs", "service-2")
        assert "CreateLogGroup" in model["operations"]
        assert loader.list_available_services("service-2") is loader.list_available_services(
            "service-2"
        )  # listed once
    finally:
        undo()
    assert utils.create_loader is original  # (moto's own, or an embedded AWS's still entered)


def test_backends_list_regions_through_boto3s_default_session() -> None:
    import boto3
    from moto.core.base_backend import AccountSpecificBackend

    original = AccountSpecificBackend.__dict__["get_session"]
    undo = moto_patches.shared_session()
    try:
        assert AccountSpecificBackend.get_session() is boto3.DEFAULT_SESSION
        assert "us-east-1" in AccountSpecificBackend.get_session().get_available_regions("logs")
    finally:
        undo()
    assert AccountSpecificBackend.__dict__["get_session"] is original
