version 1.2
task flaky {
  command <<<
    echo "attempt ~{task.attempt}"
    if [ ~{task.attempt} -lt 1 ]; then exit 1; fi
  >>>
  output { String s = read_string(stdout())  Int attempt = task.attempt }
  requirements { max_retries: 2 }
}
