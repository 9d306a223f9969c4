"""A {{ cookiecutter.protocol }} server, {{ cookiecutter.concurrency }} model: see README.md."""
