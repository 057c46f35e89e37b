"""The vault's web applications: the compliance console (and, later, the privacy center).

`create_app(settings)` builds one Starlette application. What every section shares lives
here: the layout (`templates/base.html`), the stylesheet (`static/`), security headers
with a strict Content-Security-Policy, server-side sessions and CSRF tokens
(`vault.web.security`). A section is a package (`vault.web.console`) with its routes and
templates under `templates/<section>/`.

The web package holds no privileges and never imports grpc: every page calls the vault
through `vault.api.console_client` with the signed-in person's own bearer token.
"""

from vault.web.app import create_app
from vault.web.settings import WebSettings

__all__ = ["WebSettings", "create_app"]
