"""Local stand-ins for what a real environment provides: a PostgreSQL cluster, a Kubernetes control
plane built from source, and a pod runner playing the kubelet's part. Used by the tests, the bench and
`hack/cluster`; never by the operator itself."""
