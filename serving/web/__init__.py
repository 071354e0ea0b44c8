"""The web app's pages (mounted at /app by the service): templates, static files and server-drawn charts."""
