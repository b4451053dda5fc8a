// Loaded into Azurite (node --require) by tests/object_stores.py. Node answers every
// request carrying "Expect: 100-continue" with "100 Continue", even one with no body;
// the Azure SDK's curl transport (inside pyarrow) sends that header on every PUT, and
// after an empty one it may take the "100 Continue" for the final answer, leaving the
// real answer on the connection for the next request. A server need not send it when
// no body follows (RFC 9110, 10.1.1), so here none is sent then.
const http = require("http");
const createServer = http.createServer;
http.createServer = function (...args) {
  const server = createServer.apply(this, args);
  server.on("checkContinue", (req, res) => {
    if (req.headers["content-length"] !== "0") {
      res.writeContinue();
    }
    server.emit("request", req, res);
  });
  return server;
};
