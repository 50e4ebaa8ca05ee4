"""What a reviewer reads: significance statistics, the compare tables and charts, the
pull-request comment and the dvc.lock check."""
