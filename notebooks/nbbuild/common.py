"""Cell text both notebooks share: the Colab badge, the set-up cells, the error-map panel."""

from __future__ import annotations

REPO_URL = "https://github.com/gauss2d/gauss2d"


def colab_badge(name: str) -> str:
    """A Markdown "Open In Colab" badge for notebooks/``name`` on the main branch."""
    url = f"https://colab.research.google.com/github/gauss2d/gauss2d/blob/main/notebooks/{name}"
    return f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({url})"


INSTALL_MD = """\
**Setup.** On Colab the next cell installs gauss2d from GitHub (with CUDA JAX on a GPU
runtime); anywhere else it does nothing: in a clone of the repository run `pip install -e .`
once (Python >= 3.10), then open this notebook."""

INSTALL = f"""\
import shutil
import subprocess
import sys

if "google.colab" in sys.modules:
    extra = "[cuda12]" if shutil.which("nvidia-smi") else ""  # a GPU runtime gets CUDA JAX
    package = f"gauss2d{{extra}} @ git+{REPO_URL}"
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", package])"""

# The first cells of every notebook (tests/test_notebooks.py checks the install cell's shape).
SETUP_CELLS = [("md", INSTALL_MD), ("code", INSTALL)]

# The last lines of a "target | render | error map" figure: the caller's cell has made
# `fig, axes` (1 x 3), drawn axes[0] and axes[1], and set `error` [H, W].
ERROR_PANEL = """\
im = axes[2].imshow(error, cmap="magma", vmax=np.quantile(error, 0.99))
axes[2].set_title("|error|, mean over RGB (99th percentile = top)")
fig.colorbar(im, ax=axes[2], fraction=0.03)
for ax in axes:
    ax.axis("off")
plt.show()"""
