"""The application layer: what the commands do (embedded servers, status, the flow
processes), as functions the command line and other front ends call."""
