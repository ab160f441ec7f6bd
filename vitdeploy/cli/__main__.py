from vitdeploy.cli import run

run()
