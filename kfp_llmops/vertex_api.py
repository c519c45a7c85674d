"""Vertex AI API clients (the GAPIC clients of google-cloud-aiplatform), built in one place.

``api_endpoint`` overrides the regional endpoint; an ``http://`` endpoint (an emulator, or the recording server
in our tests) uses the REST transport without credentials.
"""

from __future__ import annotations


def gapic_client(client_cls, location: str, api_endpoint: str | None = None):
    if api_endpoint and api_endpoint.startswith("http://"):
        from google.auth.credentials import AnonymousCredentials

        transport_cls = client_cls.get_transport_class("rest")
        transport = transport_cls(host=api_endpoint.removeprefix("http://"), credentials=AnonymousCredentials(),
                                  url_scheme="http")
        return client_cls(transport=transport)
    return client_cls(client_options={"api_endpoint": api_endpoint or f"{location}-aiplatform.googleapis.com"})
