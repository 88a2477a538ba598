"""One size and type scale for every PNG tinynas draws.

Plots are FIG_WIDTH_IN x FIG_DPI = 946 px wide whatever their content:
report.html shows them 1:1 in its 960-px column, so PLOT_STYLE's 10-12 pt text
is 15-17 px on screen. Figures sized to their content (a width growing with
the op count, 7-inch plots at 120 dpi with 7-8 pt legends) were scaled down by
the browser to 5-8 px text.
"""

from __future__ import annotations

FIG_WIDTH_IN = 8.6
FIG_DPI = 110
PLOT_STYLE = {"font.size": 11, "axes.titlesize": 12, "axes.labelsize": 11, "legend.fontsize": 10,
              "xtick.labelsize": 10, "ytick.labelsize": 10}
