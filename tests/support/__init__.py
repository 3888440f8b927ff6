"""What the tests share: real git repositories, the CLI and the harness run as processes, trial specs,
runs recorded with the real supervisor, and the scripts several test modules train. Test modules import
from here, never from each other or from conftest."""
