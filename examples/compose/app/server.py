# The application stand-in: answers /healthz (devenv.images.APP_STANDIN, the same as the charts' tests).
import http.server, os
class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/healthz" else 404)
        self.end_headers()
        self.wfile.write(b"config-server stand-in, build " + os.environ.get("BUILD", "").encode() + b"\n")
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("", int(os.environ.get("PORT", "8080"))), Health).serve_forever()
