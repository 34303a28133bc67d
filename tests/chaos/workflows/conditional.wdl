version 1.0

# A conditional on a call's output; run with s3upload and delete_after (Finish's writes).
workflow conditional {
  input {
    Int x = 7
  }
  call check { input: x = x }
  if (check.big) {
    call grow { input: x = x }
  }
  if (!check.big) {
    call grow as shrink { input: x = 0 - x }
  }
  Int result = select_first([grow.y, shrink.y])
  output {
    Int value = result
    Boolean big = check.big
    File note = check.note
  }
}

task check {
  input {
    Int x
  }
  command <<<
    echo "checked ~{x}" > note.txt
    if [ ~{x} -gt 5 ]; then echo true; else echo false; fi
  >>>
  output {
    Boolean big = read_boolean(stdout())
    File note = "note.txt"
  }
}

task grow {
  input {
    Int x
  }
  command <<<
    echo $(( ~{x} * 10 ))
  >>>
  output {
    Int y = read_int(stdout())
  }
}
