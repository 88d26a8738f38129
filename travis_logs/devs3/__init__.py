"""A local S3 for development: moto, with every object kept in a folder across restarts."""
