"""Edge-case completions shared by the metrics tests (gold: ``GOLD``)."""

GOLD = "B cell | T cell | NK cell"

COMPLETIONS = {
    "valid": "<think>CD79A is B, CD3E is T, NKG7 is NK.</think>\n<answer>B cell | T cell | NK cell</answer>",
    "valid_multiline_think": "<think>line one\nline two\n</think>\n<answer>B cell | T cell | NK cell</answer>",
    "case_differences": "<think>x</think>\n<answer>b CELL | t cell | nk Cell</answer>",
    "wrong_order": "<think>x</think>\n<answer>T cell | B cell | NK cell</answer>",
    "partly_right": "<think>x</think>\n<answer>B cell | NK cell | T cell</answer>",
    "duplicates": "<think>x</think>\n<answer>B cell | B cell | NK cell</answer>",
    "too_few": "<think>x</think>\n<answer>B cell | T cell</answer>",
    "too_many": "<think>x</think>\n<answer>B cell | T cell | NK cell | monocyte</answer>",
    "extra_spaces_and_empty_items": "<think>x</think>\n<answer>  B cell|T cell ||  NK cell | </answer>",
    "missing_think": "<answer>B cell | T cell | NK cell</answer>",
    "missing_answer_tags": "<think>x</think>\nB cell | T cell | NK cell",
    "missing_close_answer": "<think>x</think>\n<answer>B cell | T cell | NK cell",
    "text_before": "Sure! <think>x</think>\n<answer>B cell | T cell | NK cell</answer>",
    "text_after_answer": "<think>x</think>\n<answer>B cell | T cell | NK cell</answer>\nHope this helps.",
    "no_newline_between": "<think>x</think><answer>B cell | T cell | NK cell</answer>",
    "two_answers": "<think>x</think>\n<answer>B cell | T cell | NK cell</answer><answer>B cell</answer>",
    "answer_on_next_line": "<think>x</think>\n<answer>\nB cell | T cell | NK cell\n</answer>",
    "pipe_fallback_line": "I think:\nB cell | T cell | NK cell\nDone.",
    "pipe_in_think_first": "<think>maybe T cell | B cell</think>\n<answer>\nB cell | T cell | NK cell</answer>",
    "empty_answer": "<think>x</think>\n<answer></answer>",
    "empty_answer_with_pipe_elsewhere": "<think>a | b</think>\n<answer></answer>",
    "no_pipe_single_item": "<think>x</think>\n<answer>B cell</answer>",
    "empty": "",
    "only_text": "I do not know.",
    "think_unclosed": "<think>x\n<answer>B cell | T cell | NK cell</answer>",
    "trailing_newline": "<think>x</think>\n<answer>B cell | T cell | NK cell</answer>\n",
}
