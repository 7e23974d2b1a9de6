"""One serve process: settings, the gRPC and HTTP servers, the REST API, SessionService, the web page."""
