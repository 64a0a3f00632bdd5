"""Test and demo support, not product (the wheel and the image do not ship it): a throw-away PostgreSQL,
a real single-node Kubernetes on this machine (hostnet, controlplane, node, cluster), and the images it
runs, built here (images). Used by the tests, the bench, `hack/cluster` and `hack/demo`."""
