"""The route handlers of the demo server, one module per family of URLs.

`objects` (table listings and single-object documents, projects down to resources), `files`
(file listings, single files, archives), `services` (sessions, tokens, site information,
schemas); `resolve` turns path variables into model objects and checks permissions.

Every handler is a `wire.Handler`: `handler(ctx, request, path_variables) -> Response`, called
with `ctx.site.lock` held; an `HttpError` it raises becomes a Restlet status page. The table that
maps paths to handlers is in `xnatfs.demo.app`; nothing here imports it.
"""
