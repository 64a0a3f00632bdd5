"""The operator: pure plan and Job rendering, kopf handlers and the reconcile that joins them."""
