"""Command line and --config parsing, as SGLang 0.5.7's launch_server does it."""

import pytest

from standin_server import args


def parse(*argv):
    return args.prepare_server_args(["--model-path", "m", *argv])


def test_defaults_match_sglang():
    parsed = parse()
    assert (parsed["host"], parsed["port"], parsed["tp_size"]) == ("127.0.0.1", 30000, 1)
    assert parsed["served_model_name"] == parsed["tokenizer_path"] == "m"
    assert parsed["api_key"] is None


def test_tp_abbreviation_and_aliases():
    assert parse("--tp", "4")["tp_size"] == 4
    assert parse("--tensor-parallel-size", "2")["tp_size"] == 2
    assert args.prepare_server_args(["--model", "x"])["model_path"] == "x"


def test_production_recipe_flags_are_accepted():
    parsed = parse("--tokenizer-path", "m", "--tp", "4", "--trust-remote-code", "--host", "0.0.0.0",
                   "--mem-fraction-static", "0.8", "--context-length", "8192", "--log-level", "warning",
                   "--chunked-prefill-size", "8192", "--max-running-requests", "64",
                   "--attention-backend", "aiter", "--disable-cuda-graph", "--watchdog-timeout", "600",
                   "--random-seed", "7", "--enable-metrics", "--served-model-name", "kimi")
    assert parsed["trust_remote_code"] and parsed["disable_cuda_graph"] and parsed["enable_metrics"]
    assert parsed["served_model_name"] == "kimi" and parsed["random_seed"] == 7


@pytest.mark.parametrize("argv, message", [
    (["--model-path", "m", "--bogus-flag", "1"], "unrecognized arguments: --bogus-flag 1"),
    (["--port", "1"], "the following arguments are required: --model-path/--model"),
    (["--model-path", "m", "--tokenizer", "t"], "ambiguous option: --tokenizer"),
    (["--model-path", "m", "--attention-backend", "cuda"], "invalid choice: 'cuda'"),
])
def test_bad_command_lines_exit_2_like_argparse(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        args.prepare_server_args(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_config_file_with_dashed_keys(tmp_path):
    config = tmp_path / "server.yaml"
    config.write_text("api-key: s3cret\nenable-metrics: true\ndisable-cuda-graph: false\n"
                      "tp-size: 2\ncuda-graph-bs: [1, 2, 4]\n")
    parsed = parse("--config", str(config), "--tp-size", "4")
    assert parsed["api_key"] == "s3cret" and parsed["enable_metrics"]
    assert not parsed["disable_cuda_graph"]
    assert parsed["cuda_graph_bs"] == [1, 2, 4]
    assert parsed["tp_size"] == 4  # the command line wins over the file


def test_config_file_underscore_keys_are_unknown_flags_as_in_0_5_7(tmp_path, capsys):
    config = tmp_path / "server.yaml"
    config.write_text("api_key: s3cret\n")
    with pytest.raises(SystemExit):
        parse("--config", str(config))
    assert "unrecognized arguments: --api_key s3cret" in capsys.readouterr().err


@pytest.mark.parametrize("name, content, message", [
    ("server.json", "{}", "Config file must be YAML format"),
    ("missing.yaml", None, "Config file not found"),
    ("list.yaml", "- 1\n", "Config file must contain a dictionary"),
])
def test_config_file_errors(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(ValueError, match=message):
        parse("--config", str(path))


def test_server_args_log_line_carries_api_key_like_sglang():
    assert "api_key='k'" in args.format_server_args(parse("--api-key", "k"))


def test_model_config_from_local_directory(tmp_path):
    (tmp_path / "config.json").write_text('{"architectures": ["KimiLinearForCausalLM"], '
                                          '"model_type": "kimi_linear", "max_position_embeddings": 4096}')
    config = args.model_config(args.prepare_server_args(["--model-path", str(tmp_path)]))
    assert config == {"model_type": "kimi_linear", "architectures": ["KimiLinearForCausalLM"],
                      "context_length": 4096, "max_total_num_tokens": 1_000_000}
    assert args.model_config(parse("--context-length", "100"))["context_length"] == 100
