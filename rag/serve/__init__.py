"""The faces: settings and requests in, answers out over HTTP (FastAPI), MCP and the `rag`
command; errors become status codes or one-line messages here and nowhere else.

    http.py  the app (routes, request/response models)    mcp.py  MCP server    cli.py  `rag`
    static/  the search page
"""
