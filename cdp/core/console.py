"""Terminal output shared by the commands: progress goes to stderr so stdout stays parseable."""

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn
from rich.table import Table

# Messages are never wrapped: a problem is one line however long its path, for people and for
# the logs and scripts that read it.
console = Console(stderr=True, soft_wrap=True)


def progress_bar(disable: bool = False) -> Progress:
    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=disable,
    )


def rows_table(title: str, columns, rows, **options) -> Table:
    """Rows (tuples) under the given column names; None shows as empty."""
    table = Table(title=title, **options)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    return table
