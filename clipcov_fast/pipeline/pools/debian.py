"""Find the files of an installed Debian package (the built-in pools are made from them)."""
import subprocess


class MissingPackage(RuntimeError):
    pass


def package_files(package, suffixes=None):
    """Sorted files that `dpkg -L package` lists, optionally only those ending in `suffixes`."""
    try:
        listing = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        raise MissingPackage(f"needs the Debian package {package}: apt-get install {package} "
                             "(make setup installs it as root)") from None
    files = sorted(line for line in listing.splitlines() if line)
    return [f for f in files if suffixes is None or f.endswith(tuple(suffixes))]
