version 1.0

# Retries: the chaos world fails call-flaky's first attempt (exit 1; maxRetries takes it)
# and interrupts call-spot's first attempt on the spot queue (preemptible: 1, then the
# fallback queue).
workflow retries {
  input {
    Int x = 4
  }
  call step as flaky { input: x = x }
  call step as spot { input: x = flaky.y }
  output {
    Int y = spot.y
  }
}

task step {
  input {
    Int x
  }
  command <<<
    echo $(( ~{x} + 1 ))
  >>>
  output {
    Int y = read_int(stdout())
  }
  runtime {
    maxRetries: 2
    preemptible: 1
  }
}
