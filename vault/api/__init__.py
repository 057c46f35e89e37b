"""The transport: the only package that imports grpc."""
