"""The web console: one page and its plain ES modules and styles, served by the HTTP entry at
`/` (the embedded app when it is the entry, else the gateway). No build step and nothing
fetched from elsewhere: every file the browser loads is in this package (`static/`).

Caching: the page names its assets under `/console/<version>/`, `<version>` being the
package's version and a digest of every asset, so they are cached for good (`immutable`) and
a new console is a new address; relative imports between the modules inherit it. The page
itself, and any asset asked for under its bare name or an old version, is revalidated on every
use (`no-cache`, with an `ETag`). The console's Content-Security-Policy is the edge's
(`agora.gateway.edge.CONSOLE_CSP`).
"""

from agora.console.assets import ConsoleAssets, console_router

__all__ = ["ConsoleAssets", "console_router"]
